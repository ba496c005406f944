"""``spanlake experiments list``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from spanlake.exporter.cli._common import add_store_option, open_cli_store, table


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    experiments = subparsers.add_parser("experiments", help="list experiments")
    sub = experiments.add_subparsers(dest="experiments_command", metavar="ACTION")
    sub.required = True
    ls = sub.add_parser("list", help="list experiments")
    add_store_option(ls)
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    store = open_cli_store(args)
    try:
        experiments = store.list_experiments()
    finally:
        store.close()
    if args.format == "json":
        json.dump([e.to_dict() for e in experiments], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    rows = [
        [
            e.experiment_id,
            e.name,
            datetime.fromtimestamp(e.created_time_ms / 1000, tz=timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
        ]
        for e in experiments
    ]
    sys.stdout.write(table(["ID", "NAME", "CREATED (UTC)"], rows) + "\n")
    return 0
