"""The torch.compile report: no graph breaks in a HoRA forward, and breaks attributed to HoRA by the files
of its modules, not by a path substring."""

from __future__ import annotations

import inspect

import torch

import hora.tuner.generator
import hora.tuner.layer
from hora.experiments.bench import compile_report as report_module
from hora.experiments.bench.compile_report import compile_report, hora_core_files, in_hora_code
from hora.experiments.bench.variants import Settings
from hora.experiments.bench.workloads import bert_workload


def test_compile_has_no_graph_breaks_in_training_or_unmerged_eval():
    report = compile_report(bert_workload(tiny=True), Settings())
    for mode in ("train", "eval"):
        assert report[mode]["graph_breaks_in_hora_code"] == 0, report[mode]["break_reasons"]
        assert report[mode]["graph_break_count"] == 0, report[mode]["break_reasons"]


def test_hora_code_is_the_core_modules_files_and_not_the_harness():
    assert in_hora_code(inspect.getsourcefile(hora.tuner.generator))
    assert in_hora_code(inspect.getsourcefile(hora.tuner.layer))
    assert not in_hora_code(inspect.getsourcefile(report_module))  # the harness, though under hora/
    assert not in_hora_code(inspect.getsourcefile(torch.nn.functional))
    assert not in_hora_code("/somewhere/hora/generator.py")  # a path that merely looks like HoRA's
    assert all(path.endswith(".py") for path in hora_core_files())
