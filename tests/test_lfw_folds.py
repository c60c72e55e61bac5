"""pipelines/cluster/lfw_folds.py: the commands that run every LFW fold, and the summary over folds."""

from __future__ import annotations

import json
import statistics

from pipelines.cluster import lfw_folds


def test_dry_run_prepares_and_masks_each_fold_here_and_submits_each_training_as_a_job(tmp_path, capsys):
    out = tmp_path / "lfw"
    (out / "fold2").mkdir(parents=True)
    (out / "fold2" / "manifest.json").write_text("{}")  # fold 2 is prepared already
    argv = ["--lfw", "/data/lfw", "--out", str(out), "--key", "client.key", "--folds", "1-2", "--dry-run"]
    argv += ["--address", "http://head:8265", "--defenses", "none,ppfr_fd", "--", "--epochs", "3"]
    assert lfw_folds.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    verbs = [line.split(" -- ")[-1].split()[1] if "ray job" in line else line.split()[3] for line in lines]
    assert verbs == ["prepare", "mask", "train", "train", "mask", "train", "train"]
    assert "--pairs-file /data/lfw/pairs.txt --fold 1 --align" in lines[0]
    submitted = [line for line in lines if line.startswith("ray job submit --address http://head:8265 --no-wait")]
    assert len(submitted) == 4 and all("client.key" not in line for line in submitted)
    assert f"--data {out}/fold1 --defense none" in submitted[0] and submitted[0].endswith("--epochs 3")
    assert f"--data {out}/fold1-masked --defense ppfr_fd" in submitted[1]


def test_summary_gives_mean_and_spread_over_the_finished_folds(tmp_path, capsys):
    accuracies = {1: 0.90, 2: 0.86, 3: 0.88}
    for fold, accuracy in accuracies.items():
        run = tmp_path / "runs" / f"fold{fold}" / "none"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({"verification_accuracy": accuracy}))
    assert lfw_folds.main(["--out", str(tmp_path), "--summary"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| none"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "3"
    assert float(cells[2]) == round(statistics.mean(accuracies.values()), 4)
    assert float(cells[3]) == round(statistics.stdev(accuracies.values()), 4)
