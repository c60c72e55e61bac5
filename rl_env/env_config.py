"""The MixUp-k environment's settings, checked before Ray starts, and their plain-dict form for RLlib.

RLlib constructs environments itself, from `config.env_config` (a dict it may copy, pickle and checkpoint),
so the typed `MixUpKEnvConfig` travels as `to_env_config()` and comes back through `from_env_config()`.
The learner the environment drives is named by a picklable spec, not an object: `StandInSurface` (the
stand-in learner, built inside the environment) or `MailboxLinkConfig` (the named mailbox of a running Ray
Train run, looked up when the first episode starts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from common.errors import InputError
from rl_env.reward import DEFAULT_LOSS_WEIGHT, DEFAULT_UTILITY_PENALTY
from rl_env.standin import StandInSurface

DEFAULT_CANDIDATE_SET = (2, 3, 4, 5, 6)
RLLIB_ENV_CONFIG_KEYS = frozenset({"num_envs"})
"""Keys RLlib itself may add to an env_config (vectorised construction); ignored, never an error."""


@dataclass(frozen=True)
class MailboxLinkConfig:
    """Drive the real FR learner through the named `LearnerMailbox` of its Ray Train run."""

    mailbox_name: str
    namespace: str | None = None
    timeout_s: float = 600.0  # covers one window plus a FailureConfig restart of the training workers

    def __post_init__(self) -> None:
        if not self.mailbox_name:
            raise InputError("link mailbox_name is empty: name the LearnerMailbox of the training run")
        if self.timeout_s <= 0:
            raise InputError(f"link timeout_s={self.timeout_s}: give the learner a positive number of seconds")


LinkConfig = StandInSurface | MailboxLinkConfig
LINK_KINDS: dict[str, type] = {"standin": StandInSurface, "mailbox": MailboxLinkConfig}


@dataclass(frozen=True)
class MixUpKEnvConfig:
    """What the environment offers the strategy, how it pays it, and which learner it drives."""

    candidate_set: tuple[int, ...] = DEFAULT_CANDIDATE_SET  # the k the strategy chooses from (action i -> K[i])
    window_batches: int = 8  # W: batches the learner trains per step
    windows_per_episode: int = 10  # steps per episode (e.g. one epoch of windows)
    batch_size: int = 32  # the FR batch; no k may exceed it (partners are drawn from the batch)
    loss_weight: float = DEFAULT_LOSS_WEIGHT
    utility_penalty: float = DEFAULT_UTILITY_PENALTY  # lambda of rl_env.reward
    history_windows: int = 4  # recent windows the observation averages and fits its trend over
    reward_centering_windows: int = 20  # memory of the running mean subtracted from rewards; 0: off
    link: LinkConfig = field(default_factory=StandInSurface)
    window_log_path: str | None = None  # optional JSONL file: one record per window (k, reward, losses)

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidate_set", tuple(self.candidate_set))
        ks = self.candidate_set
        if not ks:
            raise InputError("candidate_set is empty: give at least one k, e.g. (2, 3, 4, 5, 6)")
        if any(isinstance(k, bool) or not isinstance(k, int) for k in ks):
            raise InputError(f"candidate_set {ks}: every k must be an integer number of faces")
        if self.batch_size < 1:
            raise InputError(f"batch_size={self.batch_size}: it must be at least 1")
        out_of_range = [k for k in ks if not 1 <= k <= self.batch_size]
        if out_of_range:
            raise InputError(
                f"candidate_set has k={out_of_range} outside 1..batch_size={self.batch_size}: a sample mixes "
                "k faces of its own batch, so each k must be at least 1 and at most the batch size"
            )
        if len(set(ks)) != len(ks):
            raise InputError(f"candidate_set {ks} repeats a k: list each k once")
        if self.window_batches < 1:
            raise InputError(f"window_batches={self.window_batches}: a window must train at least one batch")
        if self.windows_per_episode < 1:
            raise InputError(f"windows_per_episode={self.windows_per_episode}: an episode needs a window")
        if self.loss_weight < 0 or self.utility_penalty < 0:
            raise InputError(
                f"loss_weight={self.loss_weight}, utility_penalty={self.utility_penalty}: reward weights must "
                "not be negative (a negative penalty would pay the strategy for collapsing the learner)"
            )
        if self.reward_centering_windows < 0:
            raise InputError(
                f"reward_centering_windows={self.reward_centering_windows}: give a number of windows, or 0 for off"
            )
        if self.history_windows < 2:
            raise InputError(f"history_windows={self.history_windows}: a loss trend needs at least 2 windows")
        if isinstance(self.link, StandInSurface) and self.link.optimal_k not in ks:
            raise InputError(
                f"stand-in optimal_k={self.link.optimal_k} is not in candidate_set {ks}: "
                "the stand-in's best k must be one the strategy can choose"
            )

    def to_env_config(self) -> dict[str, Any]:
        """The plain dict RLlib carries to wherever it builds the environment."""
        plain = dataclasses.asdict(self)
        plain["candidate_set"] = list(self.candidate_set)
        kind = next(name for name, cls in LINK_KINDS.items() if isinstance(self.link, cls))
        plain["link"] = {"kind": kind, **dataclasses.asdict(self.link)}
        return plain

    @classmethod
    def from_env_config(cls, env_config: Mapping[str, Any]) -> MixUpKEnvConfig:
        settings = {key: value for key, value in env_config.items() if key not in RLLIB_ENV_CONFIG_KEYS}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise InputError(f"env_config has unknown keys {unknown}; known keys: {sorted(known)}")
        if "link" in settings and isinstance(settings["link"], Mapping):
            settings["link"] = link_spec_from_dict(settings["link"])
        return cls(**settings)


def link_spec_from_dict(spec: Mapping[str, Any]) -> LinkConfig:
    """`{"kind": "standin" | "mailbox", ...fields}` -> the typed spec."""
    fields = dict(spec)
    kind = fields.pop("kind", None)
    if kind not in LINK_KINDS:
        raise InputError(f"link kind {kind!r} is unknown; use one of {sorted(LINK_KINDS)}")
    spec_class = LINK_KINDS[kind]
    allowed = {f.name for f in dataclasses.fields(spec_class)}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise InputError(f"link kind {kind!r} has unknown keys {unknown}; known keys: {sorted(allowed)}")
    return spec_class(**fields)
