"""Grid progress: a line per finished run when not on a terminal, an ETA from the runs trained so far."""

from __future__ import annotations

import io

import pytest

from hora.experiments.console.grid_progress import GridProgress, format_seconds


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (42.4, "42 s"), (425, "7 min 05 s"), (7380, "2 h 03 min")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_lines_mode_prints_one_line_per_run_with_an_eta(monkeypatch):
    clock = iter([0.0, 10.0, 10.0, 10.0, 10.0, 30.0])
    monkeypatch.setattr("hora.experiments.console.grid_progress.time.perf_counter", lambda: next(clock))
    out = io.StringIO()  # not a terminal
    with GridProgress(4, stream=out) as bar:
        assert bar.mode == "lines"
        bar.start("hora_f1_lr0.001_s0")
        bar.finish("hora_f1_lr0.001_s0", "trained", {"metric": "accuracy", "accuracy": 0.75, "val_accuracy": 0.7})
        bar.start("lora_f1_lr0.001_s0")
        bar.finish("lora_f1_lr0.001_s0", "done before",
                   {"metric": "pearson", "accuracy": -0.0864, "val_accuracy": 0.7, "predicted_classes": None})
        bar.start("hora_f1_lr0.001_s1")
        bar.finish("hora_f1_lr0.001_s1", "trained")
    lines = out.getvalue().splitlines()
    assert lines == [
        "[1/4] hora_f1_lr0.001_s0: test accuracy 75.00 %, val accuracy 70.00 % (trained, 10 s); ETA 30 s",
        "[2/4] lora_f1_lr0.001_s0: test Pearson correlation -0.0864, val Pearson correlation 0.7000 (done before); "
        "ETA 20 s",
        "[3/4] hora_f1_lr0.001_s1 (trained, 20 s); ETA 15 s",
    ]


def test_off_mode_prints_nothing_and_bar_mode_on_a_terminal():
    out = io.StringIO()
    with GridProgress(2, enabled=False, stream=out) as bar:
        bar.start("a")
        bar.finish("a", "trained")
    assert out.getvalue() == "" and bar.mode == "off"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    with GridProgress(2, stream=Terminal()) as bar:
        assert bar.mode == "bar"
        bar.start("a")
        bar.finish("a", "trained")
        assert bar.eta_seconds() is not None


def test_runs_at_once_shorten_the_eta_and_a_failed_run_is_a_line_with_its_reason():
    out = io.StringIO()
    with GridProgress(5, stream=out, slots=2) as bar:
        bar.finish("a", "trained", {"accuracy": 0.75, "val_accuracy": 0.7, "predicted_classes": 1},
                   seconds=10.0)  # measured where it ran (a Ray worker)
        bar.fail("b", "failed: ValueError: boom; log: OUT/logs/b.log")
        assert bar.eta_seconds() == 10.0 * 3 / 2
    assert out.getvalue().splitlines() == [
        "[1/5] a: test accuracy 75.00 %, val accuracy 70.00 % (predicts one class: the comparison says nothing) "
        "(trained, 10 s); ETA 20 s",
        "[2/5] b: failed: ValueError: boom; log: OUT/logs/b.log; ETA 15 s",
    ]
