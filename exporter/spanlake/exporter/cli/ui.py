"""``spanlake ui``: serve the web trace viewer (read-only) over a store."""

from __future__ import annotations

import argparse
import sys

from spanlake.exporter.cli._common import add_store_option, open_cli_store
from spanlake.exporter.errors import ConfigError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ui = subparsers.add_parser(
        "ui",
        help="browse traces in a web viewer",
        description="Serve a read-only web viewer of a store's traces: search, span tree "
        "and timeline, chat view, inputs/outputs, tokens and cost.",
    )
    add_store_option(ui)
    ui.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; the viewer has no authentication)",
    )
    ui.add_argument("--port", type=int, default=5000, help="port (default 5000; 0: any free)")
    ui.add_argument("--experiment", default=None, metavar="NAME", help="experiment shown first")
    ui.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from spanlake.exporter.ui import make_server

    store = open_cli_store(args)
    try:
        try:
            server = make_server(store, args.host, args.port, args.experiment)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
        if not server.loopback_only:
            print(
                f"spanlake ui: warning: no authentication; anyone who can reach "
                f"{args.host}:{server.server_address[1]} can read every trace",
                file=sys.stderr,
            )
        print(f"spanlake ui: serving {store.uri} at {server.url} (Ctrl-C to stop)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("spanlake ui: stopped", file=sys.stderr)
        finally:
            server.server_close()
    finally:
        store.close()
    return 0
