"""Registration of HoRA in PEFT's public mapping tables under the string peft_type "HORA", as soon as peft
is imported.

PEFT's ``register_peft_method`` insists on a ``PeftType`` enum member; the mapping dicts themselves accept
a string key (``PeftType`` is a ``str`` enum, so lookups by the saved string work), which PEFT supports
since 0.17.

``import hora`` does not import peft (so the ``hora`` command line starts at once), yet HoRA must be in
PEFT's tables before PEFT is asked for it, e.g. by ``PeftModel.from_pretrained`` after a bare ``import
hora``. :func:`register_when_peft_is_imported` therefore registers at once when peft is already imported,
and otherwise installs :class:`PeftImportWatcher`, a meta-path finder that wraps two loaders:

- peft's: when peft's own import has finished, HoRA is registered;
- each ``hora.*`` submodule's: it counts how deep hora's own imports are nested. When a hora module is the
  one importing peft (``hora.tuner.config`` imports ``peft.config``), registering at once would import hora
  modules that are still half-initialised, so the registration waits until the outermost hora import
  has finished.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType


def register() -> None:
    """Add HoRA to PEFT's config, tuner and prefix tables (idempotent)."""
    from peft import mapping

    from .tuner.config import PEFT_TYPE, HoraConfig
    from .tuner.model import HoraModel

    mapping.PEFT_TYPE_TO_CONFIG_MAPPING[PEFT_TYPE] = HoraConfig
    mapping.PEFT_TYPE_TO_TUNER_MAPPING[PEFT_TYPE] = HoraModel
    mapping.PEFT_TYPE_TO_PREFIX_MAPPING[PEFT_TYPE] = HoraModel.prefix


class _WatchedLoader(importlib.abc.Loader):
    """A module's own loader, with :class:`PeftImportWatcher` told before and after the module runs."""

    def __init__(self, loader: importlib.abc.Loader, watcher: PeftImportWatcher, is_peft: bool) -> None:
        self.loader, self.watcher, self.is_peft = loader, watcher, is_peft

    def __getattr__(self, name: str):
        """Everything else (``get_code`` for ``python -m``, ``get_source``, ``is_package``...) is the real loader's."""
        return getattr(self.loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader  # the module keeps its real loader (resources, inspect, pickling)
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        if self.is_peft:
            self.loader.exec_module(module)
            self.watcher.peft_imported()
            return
        self.watcher.depth += 1
        try:
            self.loader.exec_module(module)
        finally:
            self.watcher.depth -= 1
        self.watcher.register_if_due()


class PeftImportWatcher(importlib.abc.MetaPathFinder):
    """Registers HoRA with PEFT once peft is imported and no hora module is half-initialised; then removes
    itself from ``sys.meta_path``."""

    def __init__(self) -> None:
        self.depth = 0  # hora submodules being executed, nested
        self.pending = False

    def find_spec(self, name: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        is_peft = name == "peft"
        if not (is_peft or name.startswith("hora.")):
            return None
        for finder in sys.meta_path:  # the spec every other finder would give (editable installs included)
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _WatchedLoader(spec.loader, self, is_peft)
                return spec
        return None

    def peft_imported(self) -> None:
        self.pending = True
        self.register_if_due()

    def register_if_due(self) -> None:
        if self.pending and self.depth == 0:
            self.pending = False
            self.remove()
            register()

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def register_when_peft_is_imported() -> None:
    """Register HoRA with PEFT now if peft is imported, else right after its import (see the module doc)."""
    if "peft" in sys.modules:
        register()
    elif not any(isinstance(finder, PeftImportWatcher) for finder in sys.meta_path):
        sys.meta_path.insert(0, PeftImportWatcher())
