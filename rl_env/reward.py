"""The environment's reward for one window: the FR loss the strategy provoked, minus a penalty on lost utility.

    reward = loss_weight * mixed_loss - utility_penalty * max(0, clean_val_loss - reference_val_loss)

- `mixed_loss`: the mean FR loss of the window's W mixed batches. This is the paper's adversarial signal: the
  strategy is paid for mixing so that the FR learner finds its task hard (more faces mixed = more privacy).
- `clean_val_loss - reference_val_loss`: how far the learner's loss on clean, unmixed validation batches rose
  above the lowest value it has shown so far in this training run (the reference). Only a rise is penalised:
  a learner that keeps improving costs nothing, one whose utility collapses under too much mixing costs
  `utility_penalty` per unit of loss. The reference is the best-so-far rather than a running mean because a
  running mean forgets: a learner kept collapsed for n windows would make its own collapse the new normal.
  Before any clean validation loss is known there is no reference and no penalty.

What the strategy is trained on is this reward centred: minus the running mean of the previous windows'
rewards (`RunningMean` over about `reward_centering_windows` windows; the first window gets 0). The FR loss
falls by an order of magnitude over training, far more than any choice of k moves it; without centring, the
value baseline has to chase that drift and the policy learns the drift instead of the effect of k ("reward
centering", Naik et al. 2024). Centring does not change which k is best: the mean subtracted at a window
does not depend on that window's action, and the action's later influence through the mean (about
1/reward_centering_windows of its reward, discounted) is too small to reverse any ordering. Logs and metrics
keep the raw reward.

Defaults: loss_weight = 1, utility_penalty (lambda) = 1, i.e. one nat of clean-loss rise costs as much as one
nat of mixed loss earns. `docs/reward_defaults.png` shows why: with lambda = 0 the largest k always wins (the
collapse the penalty exists to prevent); lambda = 1 makes the k just before the collapse the best choice on
the stand-in surface (see `rl_env.standin`), with a margin over the smallest lambda that does so.
"""

from __future__ import annotations

DEFAULT_LOSS_WEIGHT = 1.0
DEFAULT_UTILITY_PENALTY = 1.0


def utility_penalty_term(clean_val_loss: float, reference_val_loss: float | None) -> float:
    """The rise of the clean validation loss above the reference (0 when it did not rise or no reference)."""
    if reference_val_loss is None:
        return 0.0
    return max(0.0, clean_val_loss - reference_val_loss)


def window_reward(
    mixed_loss: float,
    clean_val_loss: float,
    reference_val_loss: float | None,
    loss_weight: float = DEFAULT_LOSS_WEIGHT,
    utility_penalty: float = DEFAULT_UTILITY_PENALTY,
) -> float:
    """The reward of one window (formula in the module docstring)."""
    return loss_weight * mixed_loss - utility_penalty * utility_penalty_term(clean_val_loss, reference_val_loss)


class RunningMean:
    """Mean of the values so far for the first `windows` values, then an exponential mean of rate 1/windows.

    The warm-up (rate 1/count) keeps the first values from being dominated by the very first one.
    """

    def __init__(self, windows: int) -> None:
        if windows < 1:
            raise ValueError(f"windows={windows}: a running mean needs at least one window of memory")
        self._min_rate = 1.0 / windows
        self._count = 0
        self.value: float | None = None

    def update(self, value: float) -> None:
        self._count += 1
        rate = max(1.0 / self._count, self._min_rate)
        self.value = value if self.value is None else self.value + rate * (value - self.value)

    def centred(self, value: float) -> float:
        """The value minus the mean of the values before it (0 when there were none)."""
        return 0.0 if self.value is None else value - self.value
