"""The `hybridmask` entry point: every verb is registered, `--help` stays light (no torch, no Ray), and bad input is
one clear line, not a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import InputError
from pipelines.cli import main as cli

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("torch", "ray")
# Runs `python -m pipelines.cli ARGS` in this interpreter, then prints which heavy modules it imported.
HELP_PROBE = f"""
import json, runpy, sys
sys.argv = ["hybridmask", *sys.argv[1:]]
try:
    runpy.run_module("pipelines.cli", run_name="__main__", alter_sys=True)
except SystemExit as exit_info:
    code = exit_info.code
print(json.dumps({{"code": code, "heavy": sorted(set({HEAVY_MODULES!r}) & set(sys.modules))}}), file=sys.stderr)
"""
VERBS = [module_name.rsplit(".", 1)[1] for module_name in cli.VERB_MODULES]


def test_help_lists_every_registered_verb(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for module_name in cli.VERB_MODULES:
        assert module_name.rsplit(".", 1)[1] in out


def test_input_error_becomes_one_line_and_exit_code_2(monkeypatch, capsys) -> None:
    def failing_handler(args):
        raise InputError("--out 'x' holds a different data set; choose an empty folder")

    parser = cli.build_parser()
    args = parser.parse_args(["demo"])
    args.handler = failing_handler
    monkeypatch.setattr(cli, "build_parser", lambda: type("P", (), {"parse_args": lambda self, argv: args})())
    monkeypatch.delenv("HYBRIDMASK_DEBUG", raising=False)
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "hybridmask demo: error: --out 'x' holds a different data set; choose an empty folder"


def test_version_and_help_show_real_values(capsys: pytest.CaptureFixture[str]) -> None:
    from common import __version__
    from masking.ppfr import DEFAULT_MASKING_RATIO
    from pipelines.cli.commands.mask import CLI_DEFAULT_RATIO

    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"hybridmask {__version__}"
    with pytest.raises(SystemExit):
        cli.main(["mask", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert CLI_DEFAULT_RATIO == DEFAULT_MASKING_RATIO and "(default: 0.5)" in help_text
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "required unless --config" in " ".join(capsys.readouterr().out.split())


def test_evaluate_never_puts_its_comparison_in_the_root_or_home_folder(tmp_path) -> None:
    from pathlib import Path

    from evaluation.evaluate_runs import comparison_folder

    with pytest.raises(InputError, match="pass --out DIR"):
        comparison_folder([Path("/tmp/runs/a"), Path("/var/runs/b")], None)
    with pytest.raises(InputError, match="pass --out DIR"):
        comparison_folder([Path.home() / "a", Path.home() / "b"], None)
    assert comparison_folder([tmp_path / "runs" / "a", tmp_path / "runs" / "b"], None) == (tmp_path / "runs").resolve()
    assert comparison_folder([Path("/tmp/a"), Path("/var/b")], tmp_path) == tmp_path


@pytest.mark.parametrize("args", [["--help"]] + [[verb, "--help"] for verb in VERBS], ids=lambda args: " ".join(args))
def test_help_imports_neither_torch_nor_ray(args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", HELP_PROBE, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    outcome = json.loads(done.stderr.strip().splitlines()[-1])
    assert outcome["code"] == 0, done.stderr
    assert "usage: hybridmask" in done.stdout
    assert outcome["heavy"] == [], f"`hybridmask {' '.join(args)}` imported {outcome['heavy']}"
