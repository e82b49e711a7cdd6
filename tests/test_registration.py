"""Registration with PEFT: ``import hora`` is light, and HoRA is in PEFT's tables whatever the import order.

Each case runs in a fresh interpreter, since the point is what a first import does."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = "from peft import mapping; assert 'HORA' in mapping.PEFT_TYPE_TO_TUNER_MAPPING, 'not registered'"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_import_hora_imports_neither_torch_nor_peft():
    result = _run("import sys, hora; print('torch' in sys.modules, 'peft' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("first", [
    "import hora",  # then PEFT alone loads a saved adapter: the registration must already be there
    "import peft, hora",
    "from hora import HoraConfig",
    "from hora.tuner.config import HoraConfig",
    "from hora.tuner.heads import discover_layout",  # a hora module other than config imports peft first
    "import hora.experiments.methods.build",
])
def test_hora_is_registered_whatever_is_imported_first(first):
    result = _run(f"{first}\n{CHECK}")
    assert result.returncode == 0, result.stderr


def test_public_names_and_submodules_load_on_first_use():
    result = _run("import hora, inspect; assert hora.HoraConfig.__module__ == 'hora.tuner.config'; "
                  "assert 'HoraLayer' in dir(hora); assert inspect.getsource(hora.fsdp); "
                  "assert not hasattr(hora, 'no_such_name')")
    assert result.returncode == 0, result.stderr


def test_python_dash_m_hora_runs_through_the_watched_loader():
    result = subprocess.run([sys.executable, "-m", "hora", "--help"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
