"""Options generated from TrainConfig: every field a command offers is an option with the field's help."""

from __future__ import annotations

from dataclasses import fields

import pytest
import typer
from typer.testing import CliRunner

from hora.cli import app
from hora.cli.options import config_fields, with_config_options, with_execution_options
from hora.experiments.grid.executors import ExecutionSettings
from hora.experiments.training.train_config import TrainConfig

runner = CliRunner()


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@pytest.mark.parametrize("command", ["train", "compare", "dynamics"])
def test_each_offered_field_is_an_option_of_its_command(command):
    text = " ".join(runner.invoke(app, [command, "--help"], terminal_width=400).output.split())
    params = {p.name: p for p in typer.main.get_command(app).commands[command].params}
    offered = config_fields(command)
    assert offered
    for f in offered:
        assert _flag(f.name) in params[f.name].opts, (command, f.name)
        assert " ".join(f.metadata["help"].split())[:30] in text, (command, f.name)
    own = {"ctx", "methods", "fractions", "seeds", "lrs", "tune_seeds", "output", "save_adapters", "resume",
           "progress", *(f.name for f in fields(ExecutionSettings))}
    assert set(params) - own == {f.name for f in offered} - own


def test_the_command_receives_the_values_as_settings():
    seen = {}
    probe = typer.Typer()

    @probe.command()
    @with_config_options("compare", steps=7)
    def run(settings: dict, tag: str = typer.Option("x")) -> None:
        seen.update(settings, tag=tag)

    result = runner.invoke(probe, ["--r", "4", "--lr-scheduler", "cosine", "--tag", "y"])
    assert result.exit_code == 0, result.output
    assert seen["r"] == 4 and seen["lr_scheduler"] == "cosine" and seen["steps"] == 7 and seen["tag"] == "y"
    assert set(seen) == {f.name for f in config_fields("compare")} | {"tag"}
    TrainConfig(**{k: v for k, v in seen.items() if k != "tag"})  # ready to build the config


def test_a_default_for_a_field_the_command_lacks_is_refused():
    with pytest.raises(TypeError, match="does not offer"):
        with_config_options("compare", seed=3)


def test_an_alias_in_a_fields_metadata_is_a_second_flag_of_its_option():
    params = {p.name: p for p in typer.main.get_command(app).commands["train"].params}
    assert params["text_columns"].opts == ["--text-columns", "--text-column"]  # the older name keeps working
    assert params["bf16"].opts == ["--bf16"] and params["bf16"].secondary_opts == ["--no-bf16"]


@pytest.mark.parametrize("command", ["compare", "study"])
def test_execution_options_come_from_execution_settings(command):
    params = {p.name: p for p in typer.main.get_command(app).commands[command].params}
    for f in fields(ExecutionSettings):
        assert "--" + f.name.replace("_", "-") in params[f.name].opts and params[f.name].help == f.metadata["help"]


def test_the_command_receives_the_execution_values():
    seen = {}
    probe = typer.Typer()

    @probe.command()
    @with_execution_options()
    def run(execution: dict) -> None:
        seen.update(execution)

    assert runner.invoke(probe, ["--ray-address", "10.0.0.1:6379", "--cpus-per-run", "2"]).exit_code == 0
    assert seen == {"ray": False, "ray_address": "10.0.0.1:6379", "cpus_per_run": 2, "gpus_per_run": None}
