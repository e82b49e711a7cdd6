"""The study command: presets, grid selection, the fraction that reaches LoRA's full-data accuracy, and
one tiny grid end to end (the real presets run the offline models; `hora study --preset quick`)."""

from __future__ import annotations

import pandas as pd
import pytest

from hora.experiments.errors import HoraError
from hora.experiments.grid import study
from hora.experiments.methods import build


def test_presets_cover_every_grid_and_the_full_protocol():
    for preset in ("quick", "full"):
        assert [g.name for g in study.PRESETS[preset]] == list(study.GRID_NAMES)
    full = {g.name: g for g in study.PRESETS["full"]}
    text = full["text"]
    assert set(text.methods) == {"hora", "lora", "lora-matched", "dora", "vera", "hora-identity"}
    assert text.fractions == (0.02, 0.05, 0.1, 0.25, 0.5, 1.0) and len(text.seeds) >= 5
    # the same lr search for every method: its default times the same factors
    for m in text.methods:
        assert text.lrs()[m] == [build.default_lr(m) * f for f in study.LR_FACTORS]
    assert full["decoder"].settings["model"] == "smollm2" and full["vision"].settings["task"] == "mnist"
    assert full["ablations-qkvo"].settings["targets"] == "q,k,v,o"
    # the ablations share text's protocol, so their HoRA and LoRA runs at 0.05 are text's runs
    ablations = full["ablations"]
    assert {"hora", "lora"} <= set(ablations.methods) and ablations.settings == text.settings
    assert ablations.tune_seeds == text.tune_seeds and ablations.seeds == text.seeds


def test_select_grids_and_errors():
    assert [g.name for g in study.select_grids("quick", ["vision"])] == ["vision"]
    with pytest.raises(HoraError, match="unknown preset"):
        study.select_grids("medium")
    with pytest.raises(HoraError, match="unknown study grid"):
        study.select_grids("full", ["audio"])


def test_reach_fraction():
    summ = pd.DataFrame([
        dict(method="lora", fraction=1.0, score_mean=0.80), dict(method="lora", fraction=0.1, score_mean=0.75),
        dict(method="hora", fraction=0.1, score_mean=0.70), dict(method="hora", fraction=0.25, score_mean=0.81),
        dict(method="hora", fraction=1.0, score_mean=0.82), dict(method="vera", fraction=1.0, score_mean=0.7),
    ])
    assert study.reach_fraction(summ, "hora") == 0.25
    assert study.reach_fraction(summ, "lora") == 1.0
    assert study.reach_fraction(summ, "vera") is None
    assert study.reach_fraction(summ[summ["fraction"] < 1], "hora") is None


def test_run_study_end_to_end_on_a_tiny_grid(tiny_bert, tiny_csv, tmp_path, monkeypatch):
    settings = dict(model=str(tiny_bert), data=str(tiny_csv), text_columns="review", label_column="sentiment",
                    steps=2, batch_size=8, max_length=16)
    grid = study.Grid("text", "tiny", ("hora", "lora"), (0.5, 1.0), (0, 1), settings, lr_factors=(1.0, 3.0),
                      tune_seeds=(0,))
    monkeypatch.setitem(study.PRESETS, "quick", [grid])
    path = study.run_study("quick", tmp_path / "st", only=["text"], progress=False)
    results = pd.read_csv(tmp_path / "st" / "text" / "results.csv")
    assert len(results) == 2 * 2 * (2 + 1)  # methods x fractions x (2 lrs on seed 0 + seed 1 at the chosen lr)
    text = path.read_text()
    assert "## tiny (`text/`)" in text and "### HoRA − LoRA, paired by seed" in text
    assert "Smallest fraction reaching LoRA's full-data mean test accuracy" in text
    assert "checks the pipeline" in text


def test_a_grid_copies_the_runs_another_grid_already_finished(tiny_bert, tiny_csv, tmp_path, monkeypatch,
                                                              trained_configs):
    settings = dict(model=str(tiny_bert), data=str(tiny_csv), text_columns="review", label_column="sentiment",
                    steps=2, batch_size=8, max_length=16)
    text = study.Grid("text", "tiny", ("hora", "lora"), (0.5,), (0,), settings, lr_factors=(1.0,))
    ablations = study.Grid("ablations", "tiny ablations", ("hora", "hora-tanh"), (0.5,), (0,), settings,
                           lr_factors=(1.0,))
    monkeypatch.setitem(study.PRESETS, "quick", [text, ablations])
    study.run_study("quick", tmp_path / "st", only=["text"], progress=False)
    trained_configs.clear()
    study.run_study("quick", tmp_path / "st", only=["ablations"], progress=False)
    assert [c.method for c in trained_configs] == ["hora-tanh"]  # hora at 0.5, seed 0 is text's run, copied
    results = pd.read_csv(tmp_path / "st" / "ablations" / "results.csv").set_index("method")
    assert results.loc["hora", "score"] == pd.read_csv(tmp_path / "st" / "text" / "results.csv").set_index(
        "method").loc["hora", "score"]


def test_every_grid_runs_through_the_given_executor(tiny_bert, tiny_csv, tmp_path, monkeypatch):
    from hora.experiments.grid.executors import SequentialExecutor

    class Recording(SequentialExecutor):
        def run(self, specs, data, started, finished):
            ran.extend(s.name for s in specs)
            super().run(specs, data, started, finished)

    ran: list[str] = []
    settings = dict(model=str(tiny_bert), data=str(tiny_csv), text_columns="review", label_column="sentiment",
                    steps=2, batch_size=8, max_length=16)
    grids = [study.Grid(name, "tiny", ("lora",), (0.5,), (0,), settings, lr_factors=(1.0,))
             for name in ("text", "decoder")]
    monkeypatch.setitem(study.PRESETS, "quick", grids)
    study.run_study("quick", tmp_path / "st", progress=False, executor=Recording())
    lr = build.default_lr("lora")
    assert ran == [f"lora_f0.5_lr{lr:g}_s0"]  # decoder's run is text's, copied rather than run again
    assert (tmp_path / "st" / "decoder" / "runs" / ran[0] / "metrics.json").is_file()


def test_a_failing_run_does_not_stop_the_study_and_a_rerun_retries_only_it(tiny_bert, tiny_csv, tmp_path,
                                                                           monkeypatch, trained_configs):
    from typer.testing import CliRunner

    from hora.cli import app
    from hora.experiments.grid import executors

    settings = dict(model=str(tiny_bert), data=str(tiny_csv), text_columns="review", label_column="sentiment",
                    steps=2, batch_size=8, max_length=16)
    grids = [study.Grid("text", "tiny", ("hora", "lora"), (0.5,), (0,), settings, lr_factors=(1.0,)),
             study.Grid("decoder", "tiny too", ("lora",), (1.0,), (0,), settings, lr_factors=(1.0,))]
    monkeypatch.setitem(study.PRESETS, "quick", grids)
    recording_train = executors.train

    def hora_fails(cfg, **kwargs):
        if cfg.method == "hora":
            raise RuntimeError("a bug that only HoRA runs hit\nsecond line")
        return recording_train(cfg, **kwargs)

    monkeypatch.setattr(executors, "train", hora_fails)
    out = tmp_path / "st"
    command = ["study", "--preset", "quick", "--output", str(out), "--no-progress"]
    result = CliRunner().invoke(app, command)
    hora_run = f"hora_f0.5_lr{build.default_lr('hora'):g}_s0"
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("hora: error: 1 runs of the study did not finish: "
                                    f"{hora_run} (RuntimeError: a bug that only HoRA runs hit; log: "
                                    f"{out / 'text' / 'logs' / hora_run}.log)")
    assert "second line" in (out / "text" / "logs" / f"{hora_run}.log").read_text()
    assert [c.method for c in trained_configs] == ["lora", "lora"]  # the text grid's lora and the decoder grid
    text = (out / "study.md").read_text()
    assert "## tiny (`text/`)" in text and "## tiny too (`decoder/`)" in text

    monkeypatch.setattr(executors, "train", recording_train)  # fixed: the rerun trains the failed run only
    trained_configs.clear()
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert [c.method for c in trained_configs] == ["hora"]
    assert set(pd.read_csv(out / "text" / "results.csv")["method"]) == {"hora", "lora"}
