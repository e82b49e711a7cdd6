"""The README's Python quickstart, run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hora.experiments import assets
from hora.experiments.errors import AssetMissingError

README = Path(__file__).resolve().parents[1] / "README.md"


def _minilm_installed() -> bool:
    try:
        assets.minilm_dir()
    except AssetMissingError:
        return False
    return True


needs_minilm = pytest.mark.skipif(not _minilm_installed(), reason="MiniLM not installed (make assets)")


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
