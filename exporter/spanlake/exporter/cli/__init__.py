"""The ``spanlake`` command line: ``traces``, ``experiments``, ``stats``, ``serve``, ``store``.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func=handler(args) -> int``. spanlake's own errors print as one line on stderr with exit
code 2 (bad input) or 1 (store trouble), never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from spanlake.exporter.errors import (
    ConfigError,
    FilterError,
    NotFoundError,
    SpanlakeError,
)

_SUBCOMMANDS = ("traces", "experiments", "stats", "serve", "store", "ui")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spanlake",
        description="GenAI tracing on OpenTelemetry: browse, serve and maintain trace stores.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _SUBCOMMANDS:
        module_name = f"{__name__}.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # optional subcommand not shipped in this build
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (ConfigError, FilterError) as exc:
        print(f"spanlake: error: {exc}", file=sys.stderr)
        return 2
    except NotFoundError as exc:
        print(f"spanlake: error: {exc}", file=sys.stderr)
        return 1
    except SpanlakeError as exc:
        print(f"spanlake: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `spanlake traces list | head`
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
