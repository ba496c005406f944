"""``/api/stats``: the ``spanlake stats --format json`` document over HTTP, errors as 400."""

from __future__ import annotations

import json
from typing import Any

import pytest

from spanlake.exporter.cli import main

from .conftest import Served
from .test_api import get_json

START_MS = 1_700_000_000_000 - 3_600_000
END_MS = START_MS + 2 * 86_400_000


def cli_json(capsys: pytest.CaptureFixture[str], served: Served, *args: str) -> Any:
    assert main(["stats", "--store", served.store.uri, "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_stats_is_the_cli_document(ui_server: Served, capsys: pytest.CaptureFixture[str]) -> None:
    status, body = get_json(
        ui_server,
        "/api/stats",
        experiment="exp",
        group_by="model",
        interval="1h",
        start=str(START_MS),
        end=str(END_MS),
    )
    assert status == 200
    expected = cli_json(
        capsys,
        ui_server,
        "--experiment",
        "exp",
        "--group-by",
        "model",
        "--interval",
        "1h",
        "--start",
        str(START_MS),
        "--end",
        str(END_MS),
    )
    assert body == expected
    assert body["rows"] and body["group_by"] == ["model"]
    assert sum(r["count"] for r in body["rows"]) >= 4


def test_stats_group_by_list_and_all_experiments(ui_server: Served) -> None:
    _, body = get_json(ui_server, "/api/stats", group_by=["span_type", "model"], interval="1d")
    assert body["unit"] == "span" and body["group_by"] == ["span_type", "model"]
    _, every = get_json(ui_server, "/api/stats", interval="36500d")
    assert body["experiments"] is None
    assert sum(r["count"] for r in every["rows"]) == 8  # every trace of every experiment


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"group_by": "colour"}, "Invalid group_by"),
        ({"interval": "often"}, "Invalid interval"),
        ({"filter": "nope = 1"}, "unknown field"),
        ({"since": "1h", "start": "1"}, "since or start"),
        ({"start": "soon"}, "Invalid time"),
    ],
)
def test_bad_stats_parameters_are_400(
    ui_server: Served, params: dict[str, str], message: str
) -> None:
    status, body = get_json(ui_server, "/api/stats", **params)
    assert status == 400
    assert message in body["error"]["message"]
