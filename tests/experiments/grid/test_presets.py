"""The benchmark presets as data: each one's recipe, the data root filled in, protocol overrides, the run count
and the GPU-hour estimate by its stated formula."""

from __future__ import annotations

import math

import pytest

from hora.experiments.data import commonsense
from hora.experiments.errors import HoraError
from hora.experiments.grid import presets


def test_glue_is_the_lora_recipe_scored_on_validation():
    glue = presets.benchmark("glue")
    assert [t.name for t in glue.tasks] == ["sst2", "mrpc", "cola", "qnli", "rte", "stsb"]
    cola = glue.task_settings(glue.task("cola"))
    assert cola["dataset"] == "nyu-mll/glue" and cola["dataset_config"] == "cola" and cola["metric"] == "matthews"
    assert cola["test_split"] == "validation" and cola["validation_split"] == "none"  # GLUE's test labels are -1
    assert glue.task_settings(glue.task("stsb"))["metric"] == "pearson"
    assert glue.task_settings(glue.task("mrpc"))["text_columns"] == "sentence1,sentence2"
    assert (cola["r"], cola["alpha"], cola["targets"], cola["model"]) == (8, 16.0, "q,v", "FacebookAI/roberta-base")
    assert set(glue.methods) == {"hora", "lora", "dora", "hora-jointgen"}


def test_commonsense_trains_once_and_names_eight_test_sets_under_the_root():
    cs = presets.benchmark("commonsense")
    (task,) = cs.tasks
    settings = cs.task_settings(task, root="/data/LLM-Adapters")
    assert settings["dataset"] == "/data/LLM-Adapters/ft-training_set/commonsense_170k.json"
    tests = dict(item.split("=") for item in settings["test_sets"].split(","))
    assert list(tests) == list(commonsense.TASKS) == list(cs.test_sets)
    assert tests["ARC-Easy"] == "/data/LLM-Adapters/dataset/ARC-Easy/test.json"
    assert settings["objective"] == "sft" and settings["metric"] == "llm-adapters"
    assert settings["prompt_template"] == "llm-adapters" and settings["answer_column"] == "output"


def test_vtab1k_has_19_tasks_in_three_groups_in_noahs_layout():
    vtab = presets.benchmark("vtab1k")
    assert len(vtab.tasks) == 19 and vtab.groups == ("natural", "specialized", "structured")
    assert [len(names) for names in presets.VTAB_GROUPS.values()] == [7, 4, 8]
    settings = vtab.task_settings(vtab.task("smallnorb_azi"), root="/d/vtab-1k")
    assert settings["dataset"] == "/d/vtab-1k/smallnorb_azi" and settings["train_split"] == "train800"
    assert (settings["validation_split"], settings["test_split"]) == ("val200", "test")
    assert settings["model"] == "timm/vit_base_patch16_224.orig_in21k"


def test_overrides_replace_settings_and_steps_replace_the_recipes_epochs():
    glue = presets.benchmark("glue")
    settings = glue.task_settings(glue.task("rte"), overrides={"model": "/tiny", "steps": 3, "seed": None})
    assert settings["model"] == "/tiny" and settings["steps"] == 3 and settings["epochs"] is None
    assert "seed" not in settings


def test_protocol_overrides_and_run_counts():
    glue = presets.benchmark("glue")
    assert glue.runs_per_task() == 4 * (3 * 1 + 4)  # methods x (lrs on the tuning seed + the other seeds)
    small = glue.with_protocol(methods=["hora", "lora"], seeds=[3, 4], lrs=[1e-4])
    assert small.tune_seeds == (3,) and small.runs_per_task() == 2 * (1 + 1)
    assert glue.with_protocol(seeds=[0, 7]).tune_seeds == (0,)


def test_plan_counts_runs_and_sums_the_estimate():
    plan = presets.plan("glue", ["mrpc", "rte"], {"seeds": [0]})
    assert [task for task, _, _ in plan.rows] == ["mrpc", "rte"] and plan.runs == 2 * 4 * 3
    mrpc = presets.benchmark("glue").task("mrpc")
    one = presets.estimate_hours(presets.benchmark("glue"), mrpc)
    tokens = 30 * 3668 * 55 + 408 * 55 / 3  # 30 epochs of 3,668 pairs of 55 tokens, then 408 scored forward only
    steps = math.ceil(30 * 3668 / 16)
    assert one == pytest.approx((tokens * 125e6 / presets.RATE + steps * presets.STEP_OVERHEAD) / 3600)
    assert plan.rows[0][2] == pytest.approx(12 * one)
    lines = plan.lines()
    assert "total" in lines[-1] and "GPU-h" in lines[-4]


def test_the_dry_run_lists_every_run_then_the_totals():
    plan = presets.plan("glue", ["rte"], {"methods": ["hora", "lora"], "seeds": [0, 1], "lrs": [1e-4, 3e-4]})
    runs = [line.split() for line in plan.lines() if line.startswith("rte ")]
    assert runs[:6] == [["rte", "hora", "0.0001", "0"], ["rte", "hora", "0.0003", "0"], ["rte", "lora", "0.0001", "0"],
                        ["rte", "lora", "0.0003", "0"], ["rte", "hora", "chosen", "1"], ["rte", "lora", "chosen", "1"]]
    assert runs[6][:2] == ["rte", "6"] and len(runs) == 7  # then the task's count and GPU-hours
    assert plan.lines()[-1].split()[:2] == ["total", "6"]


def test_unknown_names_are_one_line_errors():
    with pytest.raises(HoraError, match="unknown benchmark preset 'superglue'"):
        presets.plan("superglue")
    with pytest.raises(HoraError, match="unknown task 'mnli' of preset glue: choose from sst2"):
        presets.plan("glue", ["mnli"])


def test_a_benchmark_read_from_a_local_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(HoraError, match=r"commonsense: no data folder LLM-Adapters \(git clone --depth 1 https://"):
        presets.benchmark("commonsense").check_root(None)
    with pytest.raises(HoraError, match="vtab1k: no data folder .*get_vtab1k.py"):
        presets.benchmark("vtab1k").check_root(str(tmp_path / "missing"))
    assert presets.benchmark("vtab1k").check_root(str(tmp_path)) == str(tmp_path)
    assert presets.benchmark("glue").check_root(None) == "nyu-mll/glue"  # a Hub ID: datasets fetches it
