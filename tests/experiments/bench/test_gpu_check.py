"""The GPU acceptance check (benchmarks/gpu_check.py) on a CPU: a pytest selection's outcome read from its junit
counts (passed, failed, skipped with reasons, a missing dependency), the report, and the entry point."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from hora.experiments.bench.gpu_check import FAILED, PASSED, SKIPPED, PytestCheck, run_gpu_check, run_tests

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
TESTS = '''
import pytest

def test_passes():
    assert True

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass

def test_fails():
    assert False, "broken"
'''


@pytest.fixture
def selection(tmp_path) -> Path:
    (tmp_path / "test_sample.py").write_text(TESTS)
    return tmp_path


def check(selection: Path, tmp_path: Path, expression: str, needs: tuple[str, ...] = ()):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return run_tests(PytestCheck("sample", ("test_sample.py",), quick=expression, needs=needs), selection, out,
                     "cpu", quick=True, timeout=120)


def test_a_selection_that_passes_reports_its_counts_and_skip_reasons(selection, tmp_path):
    result = check(selection, tmp_path, "passes or skipped")
    assert result.status == PASSED
    assert result.detail == "1 passed, 0 failed, 1 skipped of 2 (skipped: not here)"
    assert Path(result.log).is_file()


def test_a_failing_test_fails_the_check(selection, tmp_path):
    result = check(selection, tmp_path, "fails or passes")
    assert result.status == FAILED and result.detail.startswith("1 passed, 1 failed")
    assert "broken" in Path(result.log).read_text()


def test_only_skipped_tests_or_a_missing_dependency_skip_the_check(selection, tmp_path):
    assert check(selection, tmp_path, "skipped").status == SKIPPED
    absent = check(selection, tmp_path, "passes", needs=("no_such_module_here",))
    assert absent.status == SKIPPED and "no_such_module_here" in absent.detail


def test_the_script_writes_its_report_and_refuses_what_it_cannot_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", [str(SCRIPT), "--device", "cpu", "--quick", "--checks", "benchmark",
                                     "--output", str(tmp_path / "report")])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert exit_info.value.code == 0
    report = json.loads((tmp_path / "report" / "gpu_check.json").read_text())
    (benchmark,) = report["checks"]
    assert benchmark["name"] == "benchmark" and benchmark["status"] == PASSED and "train_hora_over_peft_lora" in \
        benchmark["detail"]
    assert report["environment"]["device"] == "cpu" and report["failed"] == [] and report["quick"]
    assert (tmp_path / "report" / "bench_gpu.json").is_file()
    with pytest.raises(ValueError, match="no check named nonsense"):
        run_gpu_check(ROOT, tmp_path / "other", "cpu", only=["nonsense"])


def test_cuda_without_a_gpu_is_refused_with_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="torch sees no CUDA GPU here"):
        run_gpu_check(ROOT, tmp_path, "cuda")
