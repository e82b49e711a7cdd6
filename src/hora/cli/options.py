"""``hora train`` / ``hora compare`` options generated from :class:`~hora.experiments.train_config.TrainConfig`.

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
from dataclasses import fields
from typing import Any

import typer

from hora.experiments.train_config import TrainConfig

SETTINGS = "settings"  # the parameter through which a decorated command receives its TrainConfig values


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
    hints = typing.get_type_hints(TrainConfig)
    generated = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name],
                          default=typer.Option(defaults.get(f.name, f.default), *_flags(f), help=f.metadata["help"]))
        for f in chosen
    ]

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn, eval_str=True)
        own = [p for name, p in signature.parameters.items() if name != SETTINGS]

        @functools.wraps(fn)
        def run(**kwargs: Any) -> Any:
            settings = {f.name: kwargs.pop(f.name) for f in chosen}
            return fn(**kwargs, settings=settings)

        run.__signature__ = signature.replace(parameters=own + generated)
        run.__annotations__ = {p.name: p.annotation for p in own + generated}
        return run

    return decorate
