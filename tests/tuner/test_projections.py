"""The projection names: one definition, re-exported by hora.tuner.config, importable without torch or peft."""

from __future__ import annotations

import subprocess
import sys

from hora.tuner import config, projections


def test_config_re_exports_the_one_definition():
    assert config.PROJECTIONS is projections.PROJECTIONS == ("q", "k", "v", "o")


def test_the_names_load_without_torch_or_peft():
    code = "import sys, hora.tuner.projections; print(sorted(m for m in ('torch', 'peft') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
