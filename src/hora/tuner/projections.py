"""The attention projections HoRA adapts, by name. Their one definition, in a module that imports nothing, so
the harness can check ``--targets`` before torch and peft are loaded (``hora.tuner.config`` re-exports it)."""

PROJECTIONS = ("q", "k", "v", "o")
