"""``hora train`` / ``hora compare`` options generated from
:class:`~hora.experiments.training.train_config.TrainConfig`, and the execution options of ``hora compare`` /
``hora study`` from :class:`~hora.experiments.grid.executors.ExecutionSettings`.

A TrainConfig field whose ``commands`` metadata names a command becomes that command's option: the
field's name gives the flag (``max_length`` -> ``--max-length``, booleans get ``--x/--no-x``; ``aliases``
in its metadata add flags, e.g. an older name), its type
the option's type, its default the default, its ``help`` the help text. So an option is added, renamed or
documented in one place, the dataclass.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import Field, fields
from typing import Any

import typer

from hora.experiments.training.train_config import TrainConfig

SETTINGS = "settings"  # the parameter through which a decorated command receives its TrainConfig values
EXECUTION = "execution"  # the parameter through which it receives its ExecutionSettings values


def config_fields(command: str) -> list:
    """The TrainConfig fields offered as options by ``command``, in the dataclass's order."""
    return [f for f in fields(TrainConfig) if command in f.metadata["commands"]]


def _flags(f) -> tuple[str, ...]:
    """The flags of a field's option: none given (typer's default from the name) unless it has aliases."""
    aliases = f.metadata.get("aliases", ())
    return (f"--{f.name.replace('_', '-')}", *aliases) if aliases else ()


def with_config_options(command: str, **defaults: Any) -> Callable[[Callable], Callable]:
    """Give a typer command the options of ``command``'s TrainConfig fields (``defaults`` overrides some
    defaults, e.g. a shorter run for ``hora dynamics``). The command declares a ``settings: dict``
    parameter and receives the values there, keyed by field name, ready for ``TrainConfig(**settings)``."""
    chosen = config_fields(command)
    unknown = set(defaults) - {f.name for f in chosen}
    if unknown:
        raise TypeError(f"defaults for fields that {command} does not offer: {sorted(unknown)}")
    return _with_fields(TrainConfig, chosen, SETTINGS, defaults)


def with_execution_options() -> Callable[[Callable], Callable]:
    """Give a typer command the options of :class:`~hora.experiments.grid.executors.ExecutionSettings` (``--ray``,
    ``--ray-address``, ``--cpus-per-run``, ``--gpus-per-run``); the command declares an ``execution: dict``
    parameter and receives the values there, ready for ``ExecutionSettings(**execution)``."""
    from hora.experiments.grid.executors import ExecutionSettings

    return _with_fields(ExecutionSettings, list(fields(ExecutionSettings)), EXECUTION, {})


def _with_fields(cls: type, chosen: list[Field], param: str,
                 defaults: dict[str, Any]) -> Callable[[Callable], Callable]:
    """A decorator that adds an option per dataclass field of ``chosen`` (flag from the name, type, default,
    help from the metadata) and hands the values to the command as the dict parameter ``param``."""
    hints = typing.get_type_hints(cls)
    generated = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name],
                          default=typer.Option(defaults.get(f.name, f.default), *_flags(f), help=f.metadata["help"]))
        for f in chosen
    ]

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn, eval_str=True)
        own = [p for name, p in signature.parameters.items() if name != param]

        @functools.wraps(fn)
        def run(**kwargs: Any) -> Any:
            values = {f.name: kwargs.pop(f.name) for f in chosen}
            return fn(**kwargs, **{param: values})

        run.__signature__ = signature.replace(parameters=own + generated)
        run.__annotations__ = {p.name: p.annotation for p in own + generated}
        return run

    return decorate
