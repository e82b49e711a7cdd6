"""The ``hora`` command line: train, compare, study, report, export, info, simulate, dynamics, pretrain-vit,
assets, bench.

Every command runs offline on assets that ship inside packages (see ``hora assets``). Bad input prints one
line, ``hora: error: ...``, on stderr and exits with status 2 (set HORA_DEBUG=1 for the traceback).
"""

from hora.cli.commands import app

__all__ = ["app"]
