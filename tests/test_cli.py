"""The `hybridmask` entry point: every verb is registered and bad input is one clear line, not a traceback."""

from __future__ import annotations

import pytest

from common.errors import InputError
from pipelines.cli import main as cli


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
