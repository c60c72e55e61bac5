"""The one optimisation loop the attacks' networks share: Adam with a cosine-decayed learning rate."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import TypeVar

import torch
from torch import nn

from trainers.progress import StepProgress

M = TypeVar("M")

_PROGRESS: ContextVar[tuple[Callable[[str], None], str] | None] = ContextVar("attack_progress", default=None)


@contextlib.contextmanager
def attack_progress(say: Callable[[str], None], label: str) -> Iterator[None]:
    """Within the block, every attack loop reports its steps through `say`, prefixed by `label`."""
    token = _PROGRESS.set((say, label))
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def counted_steps(steps: int, what: str) -> Iterator[int]:
    """range(steps) that reports progress (step, rate, time left) every few seconds inside `attack_progress`."""
    current = _PROGRESS.get()
    progress = (
        StepProgress(steps, every_s=0.0)
        if current is None
        else StepProgress(steps, emit=current[0], label=f"{current[1]} {what}: ")
    )
    for step in range(steps):
        yield step
        progress.step()


def seeded(seed: int, build: Callable[[], M]) -> M:
    """Networks whose initial weights depend on `seed` only, built without touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def optimize(
    modules: nn.Module | Iterable[nn.Module],
    loss_of_batch: Callable[[], torch.Tensor],
    steps: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
) -> float:
    """Train `modules` for `steps` steps on the loss of a fresh batch each step; returns the last loss."""
    module_list = [modules] if isinstance(modules, nn.Module) else list(modules)
    parameters = [p for module in module_list for p in module.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=lr, betas=betas)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    for module in module_list:
        module.train()
    loss = torch.zeros(())
    for _ in counted_steps(steps, "training"):
        loss = loss_of_batch()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    for module in module_list:
        module.eval()
    return float(loss.detach())
