"""PII redactors (``spanlake_redactors`` entry points, ``SPANLAKE_REDACTOR``) see every
span's content before it is written, through both front doors; failures store no content.

Each app is the README's SDK snippet plus the manual API, in its own process; it exports
with the in-process exporter or with the real OTLP exporter to a receiver. The test reads
every table of the SQLite file back.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from receiver.conftest import StartReceiver
from receiver.conftest import start_receiver as start_receiver  # the fixture, shared

from spanlake.exporter import SpanlakeSpanExporter
from spanlake.exporter.errors import ConfigError
from spanlake.exporter.receiver import Receiver, ReceiverConfig
from spanlake.exporter.redaction import REDACTION_FAILED
from spanlake.exporter.store import open_store

MASK = textwrap.dedent(
    """
    import re

    EMAIL = re.compile(r"[\\w.+-]+@[\\w-]+\\.[\\w.-]+")

    def mask_emails(text: str) -> str:
        if "explode" in text:
            raise ValueError("this redactor cannot handle it")
        return EMAIL.sub("[EMAIL]", text)
    """
)

APP = textwrap.dedent(
    """
    import sys
    from opentelemetry import trace as otel
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from spanlake.tracing import trace, update_current_trace

    door, target = sys.argv[1], sys.argv[2]
    if door == "exporter":
        from spanlake.exporter import SpanlakeSpanExporter
        exporter = SpanlakeSpanExporter(target, "pii")
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=target)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.set_tracer_provider(provider)

    @trace
    def support(question, customer):
        update_current_trace(user="alice@example.com", tags={"owner": "bob@corp.io"})
        span = otel.get_current_span()
        span.set_attribute("customer.contact", "carol@example.org")
        span.set_attribute("cc", ["dave@example.net", "no address here"])
        span.add_event("note", {"text": "forwarded to erin@example.com"})
        return f"Wrote to {customer['email']}; please explode gently"

    support("Why was alice@example.com billed twice?", {"email": "frank@example.com", "n": 2})
    provider.shutdown()
    """
)


def _write(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "pii_mask.py").write_text(MASK)


def _run(tmp_path: Path, door: str, target: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANLAKE_"))}
    full.update(env)
    result = subprocess.run(
        [sys.executable, "app.py", door, target],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=full,
    )
    assert result.returncode == 0, result.stderr
    return result


def _stored(db: Path) -> tuple[str, dict[str, object]]:
    dump = "\n".join(sqlite3.connect(db).iterdump())
    store = open_store(f"sqlite:///{db}")
    try:
        (info,) = store.search_traces().traces
        trace = store.get_trace(info.trace_id)
    finally:
        store.close()
    return dump, {"info": info, "span": trace.spans[0]}


def _check_masked(db: Path) -> None:
    dump, got = _stored(db)
    assert "@example" not in dump and "@corp" not in dump  # no address, anywhere
    info, span = got["info"], got["span"]
    assert info.metadata["user"] == "[EMAIL]"  # type: ignore[attr-defined]
    assert info.tags == {"owner": "[EMAIL]"}  # type: ignore[attr-defined]
    assert json.loads(span.inputs) == {  # type: ignore[attr-defined]
        "question": "Why was [EMAIL] billed twice?",
        "customer": {"email": "[EMAIL]", "n": 2},
    }
    # The redactor raised on this one string: stored as a marker, never in clear.
    assert json.loads(span.outputs) == REDACTION_FAILED  # type: ignore[attr-defined]
    attrs = span.attributes  # type: ignore[attr-defined]
    assert attrs["customer.contact"] == "[EMAIL]"
    assert attrs["cc"] == ["[EMAIL]", "no address here"]
    (event,) = span.events  # type: ignore[attr-defined]
    assert event.attributes == {"text": "forwarded to [EMAIL]"}


def test_env_redactor_in_process(tmp_path: Path) -> None:
    _write(tmp_path)
    db = tmp_path / "spanlake.db"
    _run(tmp_path, "exporter", f"sqlite:///{db}", SPANLAKE_REDACTOR="pii_mask:mask_emails")
    _check_masked(db)


def test_env_redactor_in_the_receiver(
    tmp_path: Path, start_receiver: StartReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SPANLAKE_REDACTOR", "pii_mask:mask_emails")
    db = tmp_path / "spanlake.db"
    receiver = start_receiver(open_store(f"sqlite:///{db}"))
    _run(tmp_path, "http", f"http://127.0.0.1:{receiver.http_port}/v1/traces")
    receiver.stop()
    _check_masked(db)


def _install_entry_point(site: Path) -> None:
    """A real installed distribution declaring the redactor (what pip would leave)."""
    site.mkdir()
    (site / "pii_mask.py").write_text(MASK)
    info = site / "pii_mask-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pii-mask\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[spanlake_redactors]\nemails = pii_mask:mask_emails\n")
    (info / "RECORD").write_text("")


def test_installed_entry_point_in_process(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    _install_entry_point(tmp_path / "site")
    db = tmp_path / "spanlake.db"
    _run(tmp_path, "exporter", f"sqlite:///{db}", PYTHONPATH=str(tmp_path / "site"))
    _check_masked(db)


def test_installed_entry_point_in_the_receiver(
    tmp_path: Path, start_receiver: StartReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "app.py").write_text(APP)
    _install_entry_point(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delenv("SPANLAKE_REDACTOR", raising=False)
    db = tmp_path / "spanlake.db"
    receiver = start_receiver(open_store(f"sqlite:///{db}"))
    _run(tmp_path, "http", f"http://127.0.0.1:{receiver.http_port}/v1/traces")
    receiver.stop()
    _check_masked(db)


def test_a_redactor_that_cannot_load_drops_content_in_process(tmp_path: Path) -> None:
    _write(tmp_path)
    db = tmp_path / "spanlake.db"
    result = _run(tmp_path, "exporter", f"sqlite:///{db}", SPANLAKE_REDACTOR="pii_mask:missing")
    assert "SPANLAKE_REDACTOR='pii_mask:missing' cannot be loaded" in result.stderr
    dump, got = _stored(db)  # the span is stored, its content is not
    assert "@example" not in dump
    span = got["span"]
    assert span.name == "support"  # type: ignore[attr-defined]
    assert json.loads(span.inputs) == {  # type: ignore[attr-defined]
        "question": REDACTION_FAILED,
        "customer": {"email": REDACTION_FAILED, "n": 2},
    }


def test_a_redactor_that_cannot_load_stops_the_receiver(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPANLAKE_REDACTOR", "no_such_module_xyz:mask")
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(ConfigError, match="no_such_module_xyz"):
        Receiver(store, ReceiverConfig(grpc_port=0, http_port=0))
    store.close()
    cli = subprocess.run(
        [
            str(Path(sys.executable).parent / "spanlake"),
            "serve",
            "--store",
            f"sqlite:///{tmp_path / 'c.db'}",
            "--grpc-port",
            "0",
            "--http-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SPANLAKE_REDACTOR": "no_such_module_xyz:mask"},
    )
    assert cli.returncode == 2
    assert "spanlake serve:" in cli.stderr and "no_such_module_xyz" in cli.stderr


def test_explicit_redactors_argument(sqlite_uri: str) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    exporter = SpanlakeSpanExporter(sqlite_uri, redactors=[str.upper])
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span(
        "s", attributes={"spanlake.span.inputs": '{"q": "quiet"}'}
    ) as span:
        pass
    provider.shutdown()
    trace = open_store(sqlite_uri).get_trace(f"{span.get_span_context().trace_id:032x}")
    assert json.loads(trace.spans[0].inputs or "") == {"q": "QUIET"}
