"""The viewer's JSON API against a live server: the CLI's JSON shapes, search, paging,
errors as JSON with the right status, read-only, and the packaged page."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from spanlake.exporter.store import open_store
from spanlake.exporter.ui import make_server
from spanlake.exporter.ui.server import MAX_PAGE

from .conftest import PROD_TRACES, WEATHER_TRACE, Served, seed

ALL_TRACES = 8
CLI = [sys.executable, "-c", "import sys; from spanlake.exporter.cli import main; sys.exit(main())"]


def fetch(
    url: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def get_json(served: Served, path: str, **params: Any) -> tuple[int, Any]:
    query = urlencode(params, doseq=True)
    status, headers, body = fetch(served.url + path.lstrip("/") + (f"?{query}" if query else ""))
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(body)


def test_experiments(ui_server: Served) -> None:
    status, body = get_json(ui_server, "/api/experiments")
    assert status == 200
    assert sorted(e["name"] for e in body["experiments"]) == ["exp", "otel", "other", "weather"]
    assert body["experiments"][0].keys() == {"experiment_id", "name", "created_time_ms", "tags"}
    assert body["default_experiment"] is None


def test_traces_list_is_the_cli_json_shape(ui_server: Served) -> None:
    status, body = get_json(ui_server, "/api/traces")
    assert status == 200
    expected = [t.to_dict() for t in ui_server.store.search_traces().traces]
    assert body == {"traces": json.loads(json.dumps(expected)), "next_page_token": None}
    assert len(body["traces"]) == ALL_TRACES


def test_filter_experiment_and_order(ui_server: Served) -> None:
    _, prod = get_json(ui_server, "/api/traces", filter="tags.env = 'prod'")
    assert {t["trace_id"] for t in prod["traces"]} == PROD_TRACES
    _, other = get_json(ui_server, "/api/traces", experiment="other")
    assert [t["name"] for t in other["traces"]] == ["billing_agent"]
    _, two = get_json(ui_server, "/api/traces", experiment=["other", "weather"])
    assert {t["experiment"] for t in two["traces"]} == {"other", "weather"}
    assert len(two["traces"]) == 3
    _, by_tokens = get_json(ui_server, "/api/traces", order_by="total_tokens ASC")
    totals = [t["token_usage"]["total_tokens"] for t in by_tokens["traces"]]
    assert totals == sorted(totals)


def test_paging_walks_every_trace_once(ui_server: Served) -> None:
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"max_results": 3}
        if token:
            params["page_token"] = token
        status, body = get_json(ui_server, "/api/traces", **params)
        assert status == 200
        assert len(body["traces"]) <= 3
        seen += [t["trace_id"] for t in body["traces"]]
        pages += 1
        token = body["next_page_token"]
        if not token:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == ALL_TRACES


def test_bad_filter_is_400_with_the_filter_error(ui_server: Served) -> None:
    status, body = get_json(ui_server, "/api/traces", filter="bogus = 1")
    assert status == 400
    assert body["error"]["status"] == 400
    assert "unknown field 'bogus'" in body["error"]["message"]
    status, body = get_json(ui_server, "/api/traces", order_by="name SIDEWAYS")
    assert status == 400 and "SIDEWAYS" in body["error"]["message"]


@pytest.mark.parametrize("value", ["many", "0", str(MAX_PAGE + 1)])
def test_bad_max_results_is_400(ui_server: Served, value: str) -> None:
    status, body = get_json(ui_server, "/api/traces", max_results=value)
    assert status == 400
    assert "max_results" in body["error"]["message"]


def test_get_trace_is_the_traces_get_json_shape(ui_server: Served) -> None:
    status, body = get_json(ui_server, f"/api/traces/{WEATHER_TRACE}")
    assert status == 200
    assert body == json.loads(json.dumps(ui_server.store.get_trace(WEATHER_TRACE).to_dict()))
    assert [s["name"] for s in body["spans"]] == [
        "weather_agent",
        "chat gpt-4o",
        "get_weather",
        "chat gpt-4o",
    ]
    assert body["assessments"][0]["name"] == "helpful"


def test_unknown_trace_and_route_are_404(ui_server: Served) -> None:
    status, body = get_json(ui_server, "/api/traces/" + "0" * 32)
    assert status == 404
    assert "not found" in body["error"]["message"]
    status, body = get_json(ui_server, "/api/nothing")
    assert status == 404 and body["error"]["status"] == 404
    status, _, _ = fetch(ui_server.url + "static/../server.py")
    assert status == 404
    status, _, _ = fetch(ui_server.url + "static/server.py")
    assert status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_read_only(ui_server: Served, method: str) -> None:
    status, _, body = fetch(ui_server.url + f"api/traces/{WEATHER_TRACE}", method=method)
    assert status == 405
    assert json.loads(body)["error"]["message"] == "the trace viewer is read-only"


def test_foreign_host_header_is_refused(ui_server: Served) -> None:
    """A page on another origin resolving its name to 127.0.0.1 (DNS rebinding) gets nothing."""
    status, _, body = fetch(ui_server.url + "api/traces", headers={"Host": "evil.example:5000"})
    assert status == 403
    assert b"trace_id" not in body
    status, _, _ = fetch(ui_server.url + "api/traces", headers={"Host": "localhost:1234"})
    assert status == 200


def test_page_and_assets_are_packaged_with_a_strict_csp(ui_server: Served) -> None:
    status, headers, body = fetch(ui_server.url)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert b'<script src="/static/app.js"' in body
    for asset, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        status, headers, body = fetch(ui_server.url + "static/" + asset)
        assert status == 200 and headers["Content-Type"].startswith(kind)
        assert len(body) > 500


def test_page_never_parses_data_as_html() -> None:
    """The XSS guarantee rests on the page building DOM from text only."""
    static = Path(__file__).parents[2] / "exporter/spanlake/exporter/ui/static"
    scripts = sorted(static.glob("*.js"))
    assert len(scripts) >= 4
    for path in scripts:
        script = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in script, (path.name, sink)
    html = (static / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script breaks the CSP"


def test_cli_serves_the_store_from_env_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'cli.db'}"
    with open_store(uri) as store:
        seed(store)
    env = {**os.environ, "SPANLAKE_STORE": uri}
    proc = subprocess.Popen(
        [*CLI, "ui", "--port", "0", "--experiment", "weather"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        url = match.group(1)
        assert uri in line
        status, _, body = fetch(url + "api/experiments")
        assert status == 200
        assert json.loads(body)["default_experiment"] == "weather"
        status, _, body = fetch(url + f"api/traces/{WEATHER_TRACE}")
        assert status == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    assert "Traceback" not in proc.stderr.read()


def test_cli_port_in_use_is_a_one_line_error(ui_server: Served, tmp_path: Path) -> None:
    port = ui_server.server.server_address[1]
    result = subprocess.run(
        [*CLI, "ui", "--port", str(port), "--store", f"sqlite:///{tmp_path / 'x.db'}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"spanlake: error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("backend", ["parquet", "delta"])
def test_lake_stores_serve_the_same_api(tmp_path: Path, backend: str) -> None:
    with open_store(f"{backend}:///{tmp_path / 'lake'}") as store:
        seed(store)
        server = make_server(store, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            served = Served(server.url, store, server)
            _, prod = get_json(served, "/api/traces", filter="tags.env = 'prod'")
            assert {t["trace_id"] for t in prod["traces"]} == PROD_TRACES
            status, body = get_json(served, f"/api/traces/{WEATHER_TRACE}")
            assert status == 200 and len(body["spans"]) == 4
            status, _ = get_json(served, "/api/traces", filter="tags.env =")
            assert status == 400
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
