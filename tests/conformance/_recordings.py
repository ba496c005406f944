"""The recorded real-API cassettes in ``../shared/conformance`` and how to replay them.

Recordings are read in place at run time (never copied into the repo) from
``../shared/conformance`` (or ``SPANLAKE_CONFORMANCE_DIR``). Missing folder: a clear failure
under CI (``CI`` set), a skip elsewhere.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import vcr
import yaml

ROOT = Path(
    os.environ.get("SPANLAKE_CONFORMANCE_DIR")
    or Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance"
)
FOLDERS = ("openai-v2", "botocore")


def require_root() -> Path:
    """The recordings folder, or fail (CI) / skip (elsewhere) saying where it was looked for."""
    if not ROOT.is_dir():
        message = f"conformance recordings not found at {ROOT.resolve()} (see tests/conformance/README.md)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return ROOT


def on_disk() -> set[str]:
    """Every recording as ``folder/name`` (no ``.yaml``); empty when the folder is missing."""
    if not ROOT.is_dir():
        return set()
    return {f"{d}/{p.stem}" for d in FOLDERS for p in (ROOT / d).glob("*.yaml")}


class _FullYaml:
    """vcrpy serializer with the full Loader (stream cassettes hold ``!!binary`` bodies)."""

    @staticmethod
    def deserialize(cassette_string: str) -> Any:
        return yaml.load(cassette_string, Loader=yaml.Loader)

    @staticmethod
    def serialize(cassette_dict: Any) -> str:
        raise RuntimeError("recordings are read-only")


#: Recordings replayed in this session (``folder/name``), for the coverage check.
REPLAYED: set[str] = set()

_VCR = vcr.VCR(record_mode="none", serializer="full_yaml")
_VCR.register_serializer("full_yaml", _FullYaml)


@dataclass(frozen=True)
class Interaction:
    """One recorded request/response pair, decoded."""

    uri: str
    request_body: Any  # parsed JSON, or None
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@cache
def load(name: str) -> tuple[Interaction, ...]:
    """The interactions of ``folder/name``, in recorded order."""
    raw = yaml.load((require_root() / f"{name}.yaml").read_text(), Loader=yaml.Loader)
    out = []
    for i in raw["interactions"]:
        rq, rs = i["request"], i["response"]
        body = rs["body"]["string"]
        if isinstance(body, str):
            body = body.encode()
        req = rq["body"]
        if isinstance(req, bytes):
            req = req.decode()
        headers = {k.lower(): (v[0] if isinstance(v, list) else v) for k, v in rs["headers"].items()}
        out.append(
            Interaction(
                uri=rq["uri"],
                request_body=json.loads(req) if req else None,
                status=rs["status"]["code"],
                headers=headers,
                body=body,
            )
        )
    return tuple(out)


@contextmanager
def replay(name: str) -> Iterator[Any]:
    """Serve ``folder/name`` to the SDK's HTTP layer; every interaction must be played."""
    path = require_root() / f"{name}.yaml"
    with _VCR.use_cassette(str(path), allow_playback_repeats=False) as cassette:
        yield cassette
        assert cassette.all_played, f"{name}: not every recorded interaction was requested"
    REPLAYED.add(name)


def sse_data(body: bytes) -> list[dict[str, Any]]:
    """The JSON ``data:`` payloads of a server-sent-events body (``[DONE]`` dropped)."""
    out = []
    for line in body.decode().splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            if data and data != "[DONE]":
                out.append(json.loads(data))
    return out


def event_stream(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """``(event type, JSON payload)`` of an ``application/vnd.amazon.eventstream`` body.

    ``invoke_model_with_response_stream`` chunks wrap the model's JSON in base64 ``bytes``;
    those are unwrapped here.
    """
    from botocore.eventstream import EventStreamBuffer

    buf = EventStreamBuffer()
    buf.add_data(body)
    out = []
    for message in buf:
        kind = message.headers.get(":event-type") or message.headers.get(":exception-type")
        payload = json.loads(message.payload) if message.payload else {}
        if kind == "chunk" and "bytes" in payload:
            payload = json.loads(base64.b64decode(payload["bytes"]))
        out.append((str(kind), payload))
    return out
