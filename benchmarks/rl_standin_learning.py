"""How fast PPO and REINFORCE learn the stand-in learner's best k, and what a strategy costs per window.

For each algorithm and seed: the seconds to build the RLlib Algorithm, then `algo.train()` (one episode of
10 windows per call) until the policy's mean probability of k* over a fresh run's observations passes 0.6
and 0.9. `train s` counts only the train() calls; `ms/window` is that time per sampled window, i.e. the
strategy's own overhead per window (sampling, forward passes, update), since the stand-in answers in
microseconds. Side by side in one process, Ray started once.

    RAY_USAGE_STATS_ENABLED=0 python benchmarks/rl_standin_learning.py [--seeds 3] [--max-iterations 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import ray

from rl_env.env import MixUpKEnv
from rl_env.env_config import MixUpKEnvConfig
from rl_env.standin import StandInSurface
from rl_env.strategies import ALGORITHMS, StrategyConfig, build_strategy, mean_policy_probabilities

THRESHOLDS = (0.6, 0.9)


def learn(algorithm: str, seed: int, max_iterations: int) -> dict[str, float]:
    env_config = MixUpKEnvConfig(link=StandInSurface(seed=seed))
    fresh = MixUpKEnvConfig(link=StandInSurface(seed=seed + 1000))
    k_index = env_config.candidate_set.index(env_config.link.optimal_k)
    started = time.perf_counter()
    algo = build_strategy(StrategyConfig(algorithm=algorithm, seed=seed), env_config)
    row = {"build s": time.perf_counter() - started}
    train_s, windows = 0.0, 0
    for iteration in range(1, max_iterations + 1):
        started = time.perf_counter()
        result = algo.train()
        train_s += time.perf_counter() - started
        windows = result["env_runners"]["num_env_steps_sampled_lifetime"]
        probability = mean_policy_probabilities(algo, MixUpKEnv(fresh), 20)[k_index]
        for threshold in THRESHOLDS:
            if probability > threshold and f"iters to {threshold}" not in row:
                row |= {f"iters to {threshold}": iteration, f"train s to {threshold}": train_s}
        if probability > THRESHOLDS[-1]:
            break
    algo.stop()
    return row | {"ms/window": 1000 * train_s / windows, "final p(k*)": float(probability)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-iterations", type=int, default=40)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    columns = [
        "build s",
        *(f"{c} to {t}" for t in THRESHOLDS for c in ("iters", "train s")),
        "ms/window",
        "final p(k*)",
    ]
    print("| algorithm | seed | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 2) + "|")
    summary = {}
    for algorithm in ALGORITHMS:
        for seed in range(args.seeds):
            row = learn(algorithm, seed, args.max_iterations)
            summary.setdefault(algorithm, []).append(row)
            cells = [f"{row[c]:.2f}" if isinstance(row.get(c), float) else str(row.get(c, "—")) for c in columns]
            print(f"| {algorithm} | {seed} | " + " | ".join(cells) + " |", flush=True)
    for algorithm, rows in summary.items():
        medians = {c: np.median([r[c] for r in rows if c in r]) for c in columns if any(c in r for r in rows)}
        print(f"median {algorithm}: " + ", ".join(f"{c} {v:.2f}" for c, v in medians.items()))
    ray.shutdown()


if __name__ == "__main__":
    main()
