"""The `spanlake` CLI: its JSON contract (other tools rely on these keys), table, CSV, tree."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from spine_factories import make_trace

from spanlake.exporter.cli import main
from spanlake.exporter.records import SpanEvent
from spanlake.exporter.store import open_store

INFO_KEYS = {
    "trace_id",
    "experiment",
    "name",
    "state",
    "request_time_ms",
    "execution_time_ms",
    "request_preview",
    "response_preview",
    "tags",
    "metadata",
    "token_usage",
    "span_count",
}
USAGE_KEYS = {
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
}
SPAN_KEYS = {
    "span_id",
    "parent_span_id",
    "name",
    "span_type",
    "start_time_ns",
    "end_time_ns",
    "status",
    "status_message",
    "inputs",
    "outputs",
    "model",
    "provider",
    "token_usage",
    "attributes",
    "events",
}


@pytest.fixture
def uri(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path}/cli.db"
    store = open_store(uri)
    first = make_trace(1, tags={"env": "prod"}, metadata={"user": "alice"})
    first[1].events = [SpanEvent("exception", 5, {"exception.type": "ValueError"})]
    first[1].status, first[1].status_message = "ERROR", "bad input"
    store.write_spans(first)
    store.write_spans(make_trace(2, experiment="other", model="gpt-4o"))
    store.close()
    return uri


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_traces_list_json_contract(uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "traces", "list", "--store", uri, "--format", "json")
    assert code == 0
    items = json.loads(out)
    assert [i["trace_id"] for i in items] == [f"{2:032x}", f"{1:032x}"]
    for item in items:
        assert INFO_KEYS <= item.keys()
        assert USAGE_KEYS <= item["token_usage"].keys()
        assert len(item["trace_id"]) == 32 and item["state"] in ("OK", "ERROR", "IN_PROGRESS")
    assert items[1]["tags"] == {"env": "prod"} and items[1]["metadata"] == {"user": "alice"}
    assert items[1]["request_preview"] == '{"question": "q1"}'
    assert items[1]["token_usage"]["total_tokens"] == 110 and items[1]["span_count"] == 2


def test_traces_list_options(uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(
        capsys, "traces", "list", "--store", uri, "--format", "json", "--experiment", "other"
    )
    assert [i["experiment"] for i in json.loads(out)] == ["other"]
    _, out, _ = run(
        capsys, "traces", "list", "--store", uri, "--format", "json", "--filter", "model = 'gpt-4o'"
    )
    assert len(json.loads(out)) == 1
    _, out, _ = run(
        capsys,
        "traces",
        "list",
        "--store",
        uri,
        "--format",
        "json",
        "--order-by",
        "request_time_ms ASC",
        "--max-results",
        "1",
    )
    assert [i["trace_id"] for i in json.loads(out)] == [f"{1:032x}"]
    _, out, _ = run(capsys, "traces", "list", "--store", uri, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2 and rows[0]["total_tokens"] == "110"
    _, out, _ = run(capsys, "traces", "list", "--store", uri)
    assert "TRACE_ID" in out.splitlines()[0] and f"{1:032x}" in out


def test_traces_get_json_and_tree(uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    trace_id = f"{1:032x}"
    code, out, _ = run(capsys, "traces", "get", trace_id, "--store", uri, "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert INFO_KEYS <= doc["info"].keys() and doc["assessments"] == []
    root, llm = doc["spans"]
    assert SPAN_KEYS <= root.keys()
    assert root["parent_span_id"] is None and llm["parent_span_id"] == root["span_id"]
    assert root["inputs"] == {"question": "q1"} and root["outputs"] == "a1"  # decoded JSON
    assert llm["status"] == "ERROR" and llm["status_message"] == "bad input"
    assert llm["events"] == [
        {"name": "exception", "time_ns": 5, "attributes": {"exception.type": "ValueError"}}
    ]
    assert llm["token_usage"]["input_tokens"] == 100
    code, out, _ = run(capsys, "traces", "get", trace_id, "--store", uri)
    lines = out.splitlines()
    assert lines[0].startswith(f"Trace {trace_id}")
    assert any(line.startswith("└── agent [AGENT]") for line in lines)
    assert any(
        "    └── chat claude-sonnet-4 [CHAT_MODEL]" in line
        and "ERROR: bad input" in line
        and "tokens 110" in line
        for line in lines
    )


def test_errors_are_one_line(uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "traces", "list", "--store", uri, "--filter", "status = ")
    assert (
        code == 2 and err.startswith("spanlake: error: Invalid filter") and "Traceback" not in err
    )
    code, _, err = run(capsys, "traces", "get", "f" * 32, "--store", uri)
    assert code == 1 and "not found" in err
    code, _, err = run(capsys, "traces", "list", "--store", "oracle:///x")
    assert code == 2 and "Unknown store scheme" in err


def test_experiments_list_and_console_script(uri: str) -> None:
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "spanlake"),
            "experiments",
            "list",
            "--store",
            uri,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert [e["name"] for e in json.loads(out)] == ["exp", "other"]
