"""The reduced `hybridmask demo` that the demo and attack tests share: one subprocess run, with its own local Ray.

Sized so both test modules can read it: the demo's own pipeline (every default defence) on fewer faces and epochs,
masked at ratio 0.1 (so a leaked key has something to recover), and attack budgets at which recovery is proven on
`none` while the model inversions only need to run and be judged (whether they are proven is reported, not asserted).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from trainers.local_ray import PREEMPTION_WATCHER_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DEFENSES = ("none", "ppfr_fd", "hybrid_adaptive")
DEMO_EPOCHS = 4
# Every budget key the demo sets is set here too, so `hybridmask attack` with BUDGET attacks at the demo's budget.
BUDGET = [
    "threads=2", "max_targets=16", "max_identities=12", "evaluator.classifier_epochs=20",
    "recovery.steps=60", "recovery.width=16", "recovery.batch_size=16",
    "whitebox.gan_steps=15", "whitebox.gan_width=16", "whitebox.inversion_steps=4", "whitebox.restarts=1", "whitebox.kept_restarts=1",
    "blackbox.pool=256", "blackbox.search_steps=2",
]  # fmt: skip
REDUCED = [
    "--identities", "24", "--images-per-identity", "8", "--epochs", str(DEMO_EPOCHS),
    "--set", "optim.batch_size=8", "--set", "masking.ratio=0.1",
    *(flag for value in BUDGET for flag in ("--set", f"budget.{value}")),
]  # fmt: skip
TIMEOUT_S = 600


@dataclass(frozen=True)
class DemoRun:
    out: Path
    key: Path
    done: subprocess.CompletedProcess

    def run_dir(self, defense: str) -> Path:
        return self.out / "runs" / defense

    @property
    def cache(self) -> Path:
        return self.out / "attack-cache"


def run_demo(out: Path, key: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO_ROOT)}
    env.pop(PREEMPTION_WATCHER_ENV, None)  # other test modules set it in this process: the demo must set it itself
    command = [sys.executable, "-m", "pipelines.cli", "demo", "--out", str(out), "--key", str(key), *REDUCED]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done
