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
