"""The ``tao`` command line: one Typer app with the verbs of :mod:`opentao.cli.run` (the stages and whole runs),
:mod:`opentao.cli.serve` (gateway, keys, flywheel) and :mod:`opentao.cli.inspect` (inspect, report).

:mod:`opentao.cli.app` holds the app, the console and the shared options; this module registers every verb
module on it explicitly and defines :func:`main`, the ``tao`` entry point. User errors print one line and exit
with status 2.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from opentao.cli import inspect as inspect_verbs
from opentao.cli import run as run_verbs
from opentao.cli import serve as serve_verbs
from opentao.cli.app import _setup_logging, app
from opentao.errors import TaoError

run_verbs.register(app)
serve_verbs.register(app)
inspect_verbs.register(app)

__all__ = ["app", "main"]


def main() -> None:
    _setup_logging()
    try:
        app(standalone_mode=False)
    except TaoError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line, never wrapped
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted: finished parts are kept; re-run the same command to resume")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors come through here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
