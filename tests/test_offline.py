"""hora.offline_model and the README's Python quickstart, run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hora
from hora.experiments import assets
from hora.experiments.errors import AssetMissingError, HoraError

README = Path(__file__).resolve().parents[1] / "README.md"


def _minilm_installed() -> bool:
    try:
        assets.minilm_dir()
    except AssetMissingError:
        return False
    return True


needs_minilm = pytest.mark.skipif(not _minilm_installed(), reason="MiniLM not installed (make assets)")


@needs_minilm
def test_offline_model_is_the_minilm_folder():
    folder = Path(hora.offline_model("minilm"))
    assert folder == assets.minilm_dir() and (folder / "config.json").is_file()
    assert hora.offline_model() == str(folder)


def test_offline_model_names_the_choices_and_the_install_command(monkeypatch, tmp_path):
    with pytest.raises(HoraError, match="unknown offline model 'bert'; choose one of: minilm, smollm2, vit"):
        hora.offline_model("bert")
    monkeypatch.setenv("HORA_CACHE", str(tmp_path))
    with pytest.raises(HoraError, match="hora pretrain-vit"):
        hora.offline_model("vit")


@needs_minilm
def test_readme_python_quickstart_runs_as_written(tmp_path, monkeypatch):
    block = re.search(r"## Quickstart \(Python\)\s+```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None, "README has no Python quickstart block"
    code = block.group(1)
    assert "path/to" not in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README quickstart", "exec"), {"__name__": "readme_quickstart"})
    assert (tmp_path / "my-hora-adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "my-lora-adapter" / "adapter_config.json").is_file()
