"""The white-box attack's GAN prior, as the latent search uses it: frozen weights, and a generator that normalises
by the batch as in training, so latents pushed far from the training distribution still give faces of the trained
brightness and contrast."""

from __future__ import annotations

import torch

from evaluation.attacks.gan import GanCache, GanPrior
from evaluation.budgets import WhiteboxBudgetConfig

BUDGET = WhiteboxBudgetConfig(gan_steps=3, gan_batch_size=4, gan_width=4, latent_size=8)


def trained_prior() -> GanPrior:
    faces = torch.rand(6, 1, 16, 16)
    return GanCache().prior(faces, BUDGET, 16, seed=0, device=torch.device("cpu"))


def test_the_prior_is_frozen_and_keeps_its_trained_running_averages() -> None:
    prior = trained_prior()
    averages = {name: value.clone() for name, value in prior.generator.named_buffers() if "running" in name}
    prior.generate(torch.randn(5, BUDGET.latent_size) * 50)
    assert not any(p.requires_grad for p in prior.generator.parameters())
    assert not any(p.requires_grad for p in prior.discriminator.parameters())
    assert not prior.discriminator.training
    for name, value in prior.generator.named_buffers():
        if name in averages:
            assert torch.equal(value, averages[name]), f"generating changed the generator's {name}"


def test_far_latents_give_the_brightness_spread_of_ordinary_ones() -> None:
    prior = trained_prior()
    latents = torch.randn(32, BUDGET.latent_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ordinary, far = prior.generate(latents), prior.generate(latents * 50)
    # Batch statistics normalise the features whatever the latents' scale; with the running averages a 50x latent
    # moves every pixel tens of times as far (measured on this prior: 32x the spread).
    spread_ratio = far.std().item() / ordinary.std().item()
    assert 0.5 < spread_ratio < 2.0, f"50x latents spread pixels {spread_ratio:.1f}x as far as ordinary ones"
