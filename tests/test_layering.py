"""The library's layering (docs/architecture.md), declared as import-linter contracts in pyproject.toml: the core,
the PEFT glue and the tools never import the harness or the CLI, and each layer imports only those below it; inside
the harness, each room imports only the rooms below it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_of_pyproject_are_kept(capsys):
    cli = pytest.importorskip("importlinter.cli")
    code = cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "2 kept, 0 broken" in out
