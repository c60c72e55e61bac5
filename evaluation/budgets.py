"""How much work the attacks and evaluators may do: one config object, two presets, `--set budget.key=value`.

"small" finishes a run's three attacks in both key settings in minutes on 2 CPU cores (64 px faces, a few
hundred images). "paper" is the scale of a real evaluation on a GPU node: ten times the training steps, every
private image and identity attacked, wider networks; expect tens of minutes per run on one GPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from common.errors import InputError
from evaluation.identification import DescriptorMode
from trainers.config_io import apply_overrides, from_dict, to_dict

_MAY_BE_ZERO = {"seed", "prior_weight", "search_steps"}


@dataclass
class RecoveryBudgetConfig:
    steps: int = 400  # decoder training steps
    batch_size: int = 16
    width: int = 16  # channels of the U-Net's first stage (doubling per stage)
    lr: float = 2e-3


@dataclass
class WhiteboxBudgetConfig:
    # The prior's quality limits what inversion can show: in four paired runs on ORL, width 32 and 3,000 updates
    # named more people than width 16 and 1,500 every time (docs/results/README.md), for ~9 minutes once per public set.
    gan_steps: int = 3000  # generator and discriminator updates on the public faces
    gan_batch_size: int = 32
    gan_width: int = 32
    latent_size: int = 64
    inversion_steps: int = 150  # latent optimisation steps per identity
    restarts: int = 6  # random latent starts per identity
    # the restarts the FR model scores highest for the identity, whose faces' mean answers (1: the best face alone)
    kept_restarts: int = 3
    inversion_lr: float = 0.05
    prior_weight: float = 0.1  # weight of the discriminator's realism term (GMI's prior loss)
    identity_weight: float = 10.0  # weight of the identity term, minus the cosine to the target's prototype


@dataclass
class BlackboxBudgetConfig:
    pool: int = 4096  # faces drawn from the public prior (the white-box GAN) and queried once, in whole batches
    nearest: int = 4  # pool faces kept per target, those whose views embed closest to it: the search starts from each
    batch_size: int = 128  # faces generated and queried at once
    # Query-only latent search from the kept faces: each step tries `search_candidates` perturbations of each and keeps
    # one that embeds closer. The mean of the kept faces answers, searched or not (0 steps: revision 2).
    search_steps: int = 20
    search_candidates: int = 8


@dataclass
class EvaluatorBudgetConfig:
    classifier_epochs: int = 30
    classifier_size: int = 32  # the evaluation classifier's input side
    dlib_mode: DescriptorMode = "detect_or_full"


@dataclass
class BudgetConfig:
    """Budgets of every attack and evaluator.

    max_targets: private images attacked (recovery, black-box, the renderings); max_identities: private
    identities attacked by white-box inversion and de-mixing; known_faces: private faces the known-plaintext attacker knows (None: the fewest whose blocks give as
    many equations per row of the map as it has unknowns, 1 for a gray 64 px face); work_size: the side at which the attacks' networks make images
    (a multiple of 16; None: the faces' own size), their outputs being resized to the faces' size; device: "auto"
    picks CUDA when available; threads: torch CPU threads while attacking, and the processes dlib describes faces in
    (None: torch's default and one dlib process; 1 is several times faster on a machine whose cores are busy with
    other jobs).
    """

    max_targets: int = 48
    max_identities: int = 24
    seed: int = 0
    work_size: int | None = None  # attacks work at the faces own size: upscaling caps what they can recover
    known_faces: int | None = None  # private faces the known-plaintext attacker knows; None: the fewest that solve
    device: str = "auto"
    threads: int | None = None
    recovery: RecoveryBudgetConfig = field(default_factory=RecoveryBudgetConfig)
    whitebox: WhiteboxBudgetConfig = field(default_factory=WhiteboxBudgetConfig)
    blackbox: BlackboxBudgetConfig = field(default_factory=BlackboxBudgetConfig)
    evaluator: EvaluatorBudgetConfig = field(default_factory=EvaluatorBudgetConfig)

    def validate(self) -> None:
        sections = [value for value in vars(self).values() if dataclasses.is_dataclass(value)]
        for section in (self, *sections):
            for item in dataclasses.fields(section):
                value = getattr(section, item.name)
                is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
                if is_number and (value < 0 or (value == 0 and item.name not in _MAY_BE_ZERO)):
                    raise InputError(f"budget {item.name} = {value}: must be positive")
        if self.evaluator.dlib_mode not in ("full", "detect_or_full"):
            raise InputError(
                f"budget evaluator.dlib_mode = {self.evaluator.dlib_mode!r}: choose 'full' or 'detect_or_full'"
            )
        if self.evaluator.classifier_size < 16:
            raise InputError("budget evaluator.classifier_size must be 16 or more")
        if self.work_size is not None and (self.work_size < 16 or self.work_size % 16):
            raise InputError(
                f"budget work_size = {self.work_size}: use a multiple of 16 (e.g. 32 or 64), or null for the faces' size"
            )
        if self.blackbox.nearest > self.blackbox.pool:
            raise InputError(
                f"budget blackbox.nearest = {self.blackbox.nearest} exceeds blackbox.pool = {self.blackbox.pool}: "
                "average at most as many faces as are drawn"
            )
        if self.whitebox.kept_restarts > self.whitebox.restarts:
            raise InputError(
                f"budget whitebox.kept_restarts = {self.whitebox.kept_restarts} exceeds whitebox.restarts = "
                f"{self.whitebox.restarts}: average at most as many faces as are searched"
            )
        if self.device != "auto" and not self.device.startswith(("cpu", "cuda", "mps")):
            raise InputError(f"budget device = {self.device!r}: use auto, cpu or cuda[:N]")

    @property
    def dlib_processes(self) -> int:
        """The processes dlib describes faces in: `threads` of them, one when `threads` is left to torch."""
        return self.threads or 1

    def size_for(self, image_size: int) -> int:
        """The side the attacks' networks work at for faces of `image_size` px (never larger than the faces)."""
        return image_size if self.work_size is None else min(self.work_size, image_size)

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


PRESETS: dict[str, BudgetConfig] = {
    "small": BudgetConfig(),
    "paper": BudgetConfig(
        max_targets=100_000,  # every private image
        max_identities=100_000,  # every private identity
        work_size=None,  # the faces' own size
        recovery=RecoveryBudgetConfig(steps=5000, batch_size=64, width=48),
        whitebox=WhiteboxBudgetConfig(
            gan_steps=20000, gan_batch_size=64, gan_width=64, inversion_steps=1000, restarts=16, kept_restarts=8
        ),
        blackbox=BlackboxBudgetConfig(pool=32768, nearest=4, batch_size=256, search_steps=100),
        evaluator=EvaluatorBudgetConfig(classifier_epochs=60, classifier_size=64),
    ),
}


def load_budgets(preset: str = "small", overrides: list[str] | None = None) -> BudgetConfig:
    """A preset with `key=value` overrides (e.g. "recovery.steps=2000", "device=cuda"), validated."""
    if preset not in PRESETS:
        raise InputError(f"unknown budget {preset!r}; choose one of {sorted(PRESETS)}")
    budgets = from_dict(
        BudgetConfig, apply_overrides(to_dict(PRESETS[preset]), list(overrides or [])), prefix="budget."
    )
    budgets.validate()
    return budgets
