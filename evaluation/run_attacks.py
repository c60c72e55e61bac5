"""Attacking one trained run: load it, build the server-view targets, run each attack in each key setting, judge
the reconstructions, and write them under RUN_DIR/attacks/ (what `hybridmask attack` and `hybridmask run` do).

For each attack A and key setting S:

    RUN_DIR/attacks/A-S.json   attack, key_setting, defense, outcome {ssim, psnr, top1, top5, knn_dist,
                               classifier_top1, classifier_top5}, targets (kind, seed, count), budget, judges
                               (fingerprint of the evaluators), evaluator_check, knowledge, context, seconds,
                               attacked {checkpoint_sha256, data_sha256}: the run it attacked (`run_fingerprint`),
                               revision: of the attack's method (`RegisteredAttack.revision`)
    RUN_DIR/attacks/A-S.npz    reconstructions uint8 [M, C, H, W], labels [M], original_indices [M] (-1 for
                               identity-level reconstructions)

The key is used in memory for the known setting and written nowhere: records are checked by
`report.public_settings`, which refuses key-like entries and binary values. Pixel defences have no key, so the
two settings coincide there and only "unknown" is run.

A record is *current* when its `attacked` fingerprint is the run's now and its attack's revision is the one the
code has; a stale one (the run was retrained, its data re-made, or the attack changed since) is never scored:
`hybridmask run` and `tune` redo it, and `evaluate` refuses it, as it refuses runs whose current records do not
cover every attack in every key setting of their defence (`coverage_gaps`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import InputError
from common.files import atomic_output, atomic_write_json, read_json
from evaluation.attacks.base import KEY_SETTINGS, AttackBudgetConfig, AttackContext, AttackResult, KeySetting
from evaluation.attacks.gan import GanCache
from evaluation.attacks.knowledge import describe_knowledge
from evaluation.attacks.registry import ATTACK_NAMES, ATTACKS, applies
from evaluation.attacks.training import attack_progress
from evaluation.budgets import BudgetConfig, load_budgets
from evaluation.evaluators import Judges, JudgesCache
from evaluation.images import to_uint8
from evaluation.measures import AttackOutcome
from evaluation.report import json_ready, public_settings
from evaluation.run_data import RunData, check_run_dir, load_run, read_summary, run_fingerprint
from evaluation.server_view import PublicDefenseConfig, ServerTargets, build_server_targets, held_samples
from masking.keys import key_fingerprint, validate_key
from trainers.checkpoints import MODEL_FILE
from trainers.config_io import to_dict
from trainers.defenses import defense_named

ATTACKS_DIR = "attacks"
CACHE_DIR = "cache"
KNOWN_KEY_MISSING = "the known-key setting simulates a leaked key; pass --key KEYFILE, or use --key-setting unknown"

Progress = Callable[[str], None]


@dataclass
class AttackCaches:
    """Trained GAN priors and evaluators, shared by every run attacked or evaluated in one process (and, given a
    folder, across processes)."""

    folder: Path | None = None
    gans: GanCache = field(init=False)
    judges: JudgesCache = field(init=False)

    def __post_init__(self) -> None:
        self.gans = GanCache(self.folder)
        self.judges = JudgesCache(self.folder)


@dataclass(frozen=True)
class AttackPlan:
    """A checked request: which attacks, in which key settings, on which run (and the key, for 'known')."""

    run_dir: Path
    defense: str
    attacks: tuple[str, ...]
    settings: tuple[KeySetting, ...]
    key: bytes | None = field(default=None, repr=False)

    @property
    def jobs(self) -> list[tuple[str, KeySetting]]:
        """(attack, key setting) pairs to run: each requested pair the attack applies to (`registry.applies`)."""
        masked = defense_named(self.defense).masked
        return [(a, s) for a in self.attacks for s in self.settings if applies(a, masked, s)]


def parse_attack_names(names: str | Iterable[str] | None) -> tuple[str, ...]:
    """Checked attack names, each once; None means every attack."""
    if names is None:
        return ATTACK_NAMES
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    unknown = [n for n in wanted if n not in ATTACK_NAMES]
    if unknown or not wanted:
        raise InputError(
            f"unknown attack {unknown[0] if unknown else '(none given)'!r}; choose from {','.join(ATTACK_NAMES)}"
        )
    return tuple(dict.fromkeys(wanted))


def parse_key_settings(value: str) -> tuple[KeySetting, ...]:
    if value == "both":
        return KEY_SETTINGS
    if value not in KEY_SETTINGS:
        raise InputError(f"--key-setting {value!r}: choose known, unknown or both")
    return (value,)


def plan_attacks(
    run_dir: str | Path,
    attacks: str | Iterable[str] | None = None,
    key_setting: str = "both",
    key: bytes | None = None,
) -> AttackPlan:
    """Check everything a request needs before any work: the run, the attack names, the settings and the key."""
    folder = check_run_dir(run_dir)
    names = parse_attack_names(attacks)
    settings = parse_key_settings(key_setting)
    defense = str(read_summary(folder)["defense"])
    if not defense_named(defense).masked:
        return AttackPlan(folder, defense, names, ("unknown",), None)
    if "known" in settings:
        if key is None:
            raise InputError(KNOWN_KEY_MISSING)
        expected = (
            torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
            .get("public_masking", {})
            .get("key_fingerprint")
        )
        if key_fingerprint(validate_key(key)) != expected:
            raise InputError(
                f"the key's fingerprint {key_fingerprint(key)} is not the run's ({expected}); pass the key file its data were masked with"
            )
    return AttackPlan(folder, defense, names, settings, key if "known" in settings else None)


def identity_targets(image_targets: ServerTargets, all_labels: torch.Tensor, count: int) -> torch.Tensor:
    """Identities for identity-level attacks: those of the image targets first (so figures show both), then others."""
    ordered = list(dict.fromkeys(image_targets.labels.tolist())) + sorted(
        set(all_labels.tolist()) - set(image_targets.labels.tolist())
    )
    return torch.tensor(ordered[:count], dtype=torch.long)


def attack_run(
    run_dir: str | Path,
    attacks: str | Iterable[str] | None = None,
    key_setting: str = "both",
    key: bytes | None = None,
    budgets: BudgetConfig | None = None,
    caches: AttackCaches | None = None,
    progress: Progress | None = None,
) -> dict[str, dict[str, AttackOutcome]]:
    """Run the attacks on one run and write their records (module docstring); returns {attack: {setting: outcome}}."""
    plan = plan_attacks(run_dir, attacks, key_setting, key)
    budgets = budgets or load_budgets()
    caches = caches or AttackCaches(plan.run_dir / ATTACKS_DIR / CACHE_DIR)
    say = progress or (lambda message: None)
    with torch_threads(budgets.threads):
        device = budgets.torch_device()
        run = load_run(plan.run_dir, device=device)
        defense = PublicDefenseConfig.from_run(run)
        say(
            f"{plan.run_dir.name}: building the evaluators (dlib gallery of {len(run.private.labels)} originals, classifier)"
        )
        judges = caches.judges.judges(run.private, run.public, budgets.evaluator, budgets.seed, budgets.dlib_processes)
        attacked = run_fingerprint(plan.run_dir)
        image_targets = build_server_targets(run, defense, budgets.max_targets, budgets.seed)
        identities = identity_targets(image_targets, run.private.labels, budgets.max_identities)
        outcomes: dict[str, dict[str, AttackOutcome]] = {}
        jobs = plan.jobs
        for number, (name, setting) in enumerate(jobs, start=1):
            say(f"{plan.run_dir.name}: [{number}/{len(jobs)}] {name} (key {setting}) ...")
            started = time.perf_counter()
            ctx = attack_context(run, defense, name, setting, plan.key, budgets, device, image_targets, identities)
            attack = ATTACKS[name].build(budgets, budgets.size_for(run.image_shape[-1]), caches.gans)
            with attack_progress(say, f"{plan.run_dir.name}: {name} (key {setting})"):
                attack.fit(ctx)
                result = attack.reconstruct(ctx)
            outcome = judges.evaluator.attack_outcome(result)
            seconds = time.perf_counter() - started
            write_attack_record(plan.run_dir, name, setting, result, outcome, ctx, judges, budgets, seconds, attacked)
            outcomes.setdefault(name, {})[setting] = outcome
            say(
                f"{plan.run_dir.name}: [{number}/{len(jobs)}] {name} (key {setting}) done in {seconds:.0f} s: SSIM {outcome.ssim:.3f}, "
                f"dlib top-1 {outcome.top1:.3f}, classifier top-1 {outcome.classifier_top1:.3f}"
            )
    return outcomes


def attack_context(
    run: RunData,
    defense: PublicDefenseConfig,
    attack: str,
    setting: KeySetting,
    key: bytes | None,
    budgets: BudgetConfig,
    device: torch.device,
    image_targets: ServerTargets,
    identities: torch.Tensor,
) -> AttackContext:
    """What the attacker gets: public faces, the model, the server-held targets (identities, for identity-level
    attacks), the defence's public settings, and the key only in the known setting."""
    per_image = not ATTACKS[attack].per_identity
    steps, batch_size = ATTACKS[attack].steps_and_batch(budgets)
    extras: dict[str, Any] = {"defense": defense, "device": str(device)}
    if attack == "known_plaintext":
        extras["known_pairs"] = known_pairs(run, image_targets, budgets.known_faces)
    if attack == "statistics_key":
        extras["server_masked"] = run.masked
    if attack == "demixing":
        extras["held_samples"] = held_samples(run, defense)
    return AttackContext(
        public_images=run.public.images,
        public_labels=run.public.labels,
        target_labels=image_targets.labels if per_image else identities,
        image_shape=run.image_shape,
        key_setting=setting,
        target_indices=image_targets.original_indices if per_image else None,
        target_masked=image_targets.inputs if per_image else None,
        model=run.model,
        key=key if setting == "known" else None,
        masking_settings=defense.summary(),
        budget=AttackBudgetConfig(
            steps=steps,
            max_targets=len(image_targets.labels) if per_image else len(identities),
            batch_size=batch_size,
            seed=budgets.seed,
        ),
        extras=extras,
    )


def known_pairs(run: RunData, targets: ServerTargets, count: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` private faces the attacker is assumed to know (None: the fewest that solve the map), with the masked
    forms the server holds of them; faces that are not attack targets when the private set allows it."""
    if run.masked is None:
        raise InputError(f"{run.run_dir}: a key-recovery attack needs the masked rows of a masked defence")
    unknowns, blocks = run.masked.shape[1], run.masked.shape[2] * run.masked.shape[3]
    needed = -(-unknowns // blocks)
    count = needed if count is None else count
    if count < needed:
        raise InputError(
            f"budget.known_faces = {count}: the map has {unknowns} unknowns per row and a face gives {blocks} "
            f"equations, so at least {needed} known faces are needed; raise it or leave it unset"
        )
    targeted = set(targets.original_indices.tolist())
    order = [row for row in range(len(run.masked)) if row not in targeted] + sorted(targeted)
    rows = torch.tensor(order[:count], dtype=torch.long)
    return run.private.images[rows], run.masked[rows]


def record_paths(run_dir: Path, attack: str, setting: str) -> tuple[Path, Path]:
    stem = run_dir / ATTACKS_DIR / f"{attack}-{setting}"
    return stem.with_suffix(".json"), stem.with_suffix(".npz")


def write_attack_record(
    run_dir: Path,
    attack: str,
    setting: str,
    result: AttackResult,
    outcome: AttackOutcome,
    ctx: AttackContext,
    judges: Judges,
    budgets: BudgetConfig,
    seconds: float,
    attacked: dict[str, str],
) -> None:
    json_path, npz_path = record_paths(run_dir, attack, setting)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    indices = result.target_indices if result.target_indices is not None else torch.full_like(result.target_labels, -1)
    with atomic_output(npz_path) as temporary:
        np.savez_compressed(
            temporary,
            reconstructions=to_uint8(result.reconstructions.numpy()),
            labels=result.target_labels.numpy(),
            original_indices=indices.numpy(),
        )
    record = public_settings(
        {
            "attack": attack,
            "key_setting": setting,
            "defense": ctx.masking_settings["defense"],
            "outcome": outcome.to_dict(),
            "targets": {
                "kind": "images" if result.target_indices is not None else "identities",
                "count": len(result.target_labels),
            },
            "budget": to_dict(budgets),
            "judges": judges.fingerprint,
            "evaluator_check": judges.check.to_dict(),
            "knowledge": describe_knowledge(ctx),
            "context": ctx.public_summary(),
            "seconds": seconds,
            "attacked": attacked,
            "revision": ATTACKS[attack].revision,
            "reconstructions": npz_path.name,
        },
        path="attack record",
    )
    atomic_write_json(json_path, json_ready(record), allow_nan=False)


def read_attack_records(run_dir: Path) -> list[dict[str, Any]]:
    """The attack records of a run, in ATTACK_NAMES order, known before unknown."""
    folder = run_dir / ATTACKS_DIR
    records = (
        [read_json(path, f"delete it and run `hybridmask attack {run_dir}` again") for path in folder.glob("*-*.json")]
        if folder.is_dir()
        else []
    )
    order = {name: index for index, name in enumerate(ATTACK_NAMES)}
    return sorted(
        records, key=lambda r: (order.get(r["attack"], len(order)), r["attack"], KEY_SETTINGS.index(r["key_setting"]))
    )


def current_records(run_dir: Path, records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The run's attack records made on the run as it is now (same checkpoint and data fingerprints), by the
    attacks as they are now (same revision; records from before revisions were kept count as revision 1)."""
    attacked = run_fingerprint(run_dir)
    return [
        r
        for r in (read_attack_records(run_dir) if records is None else records)
        if r.get("attacked") == attacked
        and r["attack"] in ATTACKS
        and r.get("revision", 1) == ATTACKS[r["attack"]].revision
    ]


def coverage_gaps(run_dir: Path, attacks: Iterable[str] = ATTACK_NAMES) -> list[str]:
    """ "attack/setting" of every attack x key setting it applies to on the run's defence without a current record."""
    done = {(r["attack"], r["key_setting"]) for r in current_records(run_dir)}
    masked = defense_named(str(read_summary(run_dir)["defense"])).masked
    return [
        f"{name}/{setting}"
        for name in attacks
        for setting in KEY_SETTINGS
        if applies(name, masked, setting) and (name, setting) not in done
    ]


def read_reconstructions(run_dir: Path, record: dict[str, Any]) -> dict[str, np.ndarray]:
    with np.load(run_dir / ATTACKS_DIR / record["reconstructions"]) as saved:
        return {name: saved[name] for name in saved.files}


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Torch's CPU thread count set for a block (None: left as it is), restored after."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
