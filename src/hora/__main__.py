"""``python -m hora ...``: the same as the ``hora`` command."""

from hora.cli import app

if __name__ == "__main__":
    app(prog_name="hora")
