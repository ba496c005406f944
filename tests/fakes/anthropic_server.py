"""A loopback Anthropic Messages API for tests: a real HTTP server the real SDK talks to.

It speaks what the ``anthropic`` SDK parses: ``POST /v1/messages`` JSON and SSE streams
(``message_start`` / ``content_block_start`` / ``content_block_delta`` with ``text_delta``,
``input_json_delta`` and ``thinking_delta`` / ``content_block_stop`` / ``ping`` /
``message_delta`` with usage / ``message_stop``, and mid-stream ``error`` events), the API's
own error bodies (400 ``invalid_request_error``, 401, 429 with ``retry-after``, 500, 529
``overloaded_error``), the Bedrock routes ``AnthropicBedrock`` uses
(``/model/{id}/invoke`` JSON and ``/model/{id}/invoke-with-response-stream`` as
``application/vnd.amazon.eventstream`` frames) and the Vertex AI routes ``AnthropicVertex``
uses (``.../models/{id}:rawPredict`` JSON and ``:streamRawPredict`` SSE). Malformed requests are rejected like the
real API (no ``max_tokens``, ``max_tokens < 1``, no messages, no API key).

Tests script *what* the model says with :class:`Reply` / :class:`ErrorReply`; the server
renders it as JSON or as a stream, whichever the request asked for::

    with FakeAnthropic() as fake:
        client = anthropic.Anthropic(base_url=fake.base_url, api_key="test")
        fake.script(Reply(text="hi", pause_after=2))
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import queue
import re
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PAUSE_TIMEOUT_S = 10.0
_ids = itertools.count(1)


@dataclass
class ToolUse:
    """A ``tool_use`` block the model emits."""

    name: str
    input: dict[str, Any]
    id: str = "toolu_01"


@dataclass
class Usage:
    """Token counts as Anthropic reports them: ``input_tokens`` EXCLUDES cache tokens."""

    input_tokens: int = 12
    output_tokens: int = 7
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


@dataclass
class Reply:
    """One scripted model answer (rendered as JSON or SSE to match the request).

    ``text=None`` with no tool uses gives a message with no content blocks (e.g. a stream
    that ends with a stop reason and no content). ``chunks`` splits the text into that many
    ``text_delta`` events. Stream delivery: ``chunk_delay`` seconds before each event after
    ``message_start``; ``pause_after=N`` holds the stream after N events until
    :meth:`FakeAnthropic.resume`; ``error_after=N`` sends an ``error`` event after N events.
    """

    text: str | None = "Hello from the fake Claude."
    tool_uses: list[ToolUse] = field(default_factory=list)
    thinking: str | None = None
    stop_reason: str | None = None
    model: str | None = None
    usage: Usage = field(default_factory=Usage)
    chunks: int = 3
    chunk_delay: float = 0.0
    pause_after: int | None = None
    error_after: int | None = None
    #: Fixed message id (default: a fresh ``msg_fake...`` per request).
    id: str | None = None


@dataclass
class ErrorReply:
    """An API error: HTTP status plus the API's ``{"type": "error", "error": {...}}`` body."""

    status: int
    type: str
    message: str = "error"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    """One request the server saw (for assertions about what was sent)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


def rate_limit(retry_after: int = 1) -> ErrorReply:
    return ErrorReply(
        429,
        "rate_limit_error",
        "Number of requests has exceeded your rate limit.",
        {"retry-after": str(retry_after)},
    )


def overloaded() -> ErrorReply:
    return ErrorReply(529, "overloaded_error", "Overloaded")


def server_error() -> ErrorReply:
    return ErrorReply(500, "api_error", "Internal server error")


# --- rendering -------------------------------------------------------------------------------


def _usage_json(usage: Usage, *, output_tokens: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens if output_tokens is None else output_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
    }
    return out


def _stop_reason(reply: Reply) -> str:
    if reply.stop_reason:
        return reply.stop_reason
    return "tool_use" if reply.tool_uses else "end_turn"


def _blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.thinking is not None:
        blocks.append({"type": "thinking", "thinking": reply.thinking, "signature": "sig"})
    if reply.text is not None:
        blocks.append({"type": "text", "text": reply.text})
    for tool in reply.tool_uses:
        blocks.append({"type": "tool_use", "id": tool.id, "name": tool.name, "input": tool.input})
    return blocks


def message_json(reply: Reply, model: str, msg_id: str) -> dict[str, Any]:
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": reply.model or model,
        "content": _blocks(reply),
        "stop_reason": _stop_reason(reply),
        "stop_sequence": None,
        "usage": _usage_json(reply.usage),
    }


def _split(text: str, parts: int) -> list[str]:
    if not text:
        return [text]
    parts = max(1, min(parts, len(text)))
    size = -(-len(text) // parts)
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream_events(reply: Reply, model: str, msg_id: str) -> list[dict[str, Any]]:
    """The SSE events of one streamed message, in the API's order."""
    start = message_json(reply, model, msg_id)
    start.update(content=[], stop_reason=None, usage=_usage_json(reply.usage, output_tokens=1))
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(_blocks(reply)):
        kind = block["type"]
        if kind == "text":
            head: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [
                {"type": "text_delta", "text": t} for t in _split(block["text"], reply.chunks)
            ]
        elif kind == "thinking":
            head = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": block["thinking"]}]
        else:
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            raw = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _split(raw, 2)]
        events.append({"type": "content_block_start", "index": index, "content_block": head})
        if index == 0:
            events.append({"type": "ping"})
        events.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
            "usage": {"output_tokens": reply.usage.output_tokens},
        }
    )
    events.append({"type": "message_stop"})
    return events


def error_json(err: ErrorReply, request_id: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": err.type, "message": err.message},
        "request_id": request_id,
    }


def eventstream_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One ``application/vnd.amazon.eventstream`` frame (string headers, CRC32s)."""
    raw_headers = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        raw_headers += struct.pack("!B", len(n)) + n + b"\x07" + struct.pack("!H", len(v)) + v
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(raw_headers))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack("!I", binascii.crc32(body))


# --- server ----------------------------------------------------------------------------------


_BEDROCK = re.compile(r"^/model/(?P<model>[^/]+)/(?P<op>invoke|invoke-with-response-stream)$")
_VERTEX = re.compile(
    r"^(?:/v1)?/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/"
    r"(?P<model>[^/:]+):(?P<op>rawPredict|streamRawPredict)$"
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small SSE writes must leave at once (real-time tests)
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.fake.received.append(Received("POST", self.path, headers, body))
        request_id = f"req_fake{next(_ids):04d}"
        self.server.fake.last_request_id = request_id
        bedrock = _BEDROCK.match(path)
        vertex = _VERTEX.match(path)
        platform = bedrock or vertex  # model in the URL, anthropic_version in the body
        if path != "/v1/messages" and platform is None:
            self._json(
                404,
                error_json(ErrorReply(404, "not_found_error", "Not found"), request_id),
                request_id,
            )
            return
        if not (headers.get("x-api-key") or headers.get("authorization")):
            err = ErrorReply(401, "authentication_error", "x-api-key header is required")
            self._json(401, error_json(err, request_id), request_id)
            return
        problem = self._validate(body, platform is not None)
        if problem:
            err = ErrorReply(400, "invalid_request_error", problem)
            self._json(400, error_json(err, request_id), request_id)
            return
        reply = self.server.fake.next_reply(body)
        if isinstance(reply, ErrorReply):
            self._json(reply.status, error_json(reply, request_id), request_id, reply.headers)
            return
        model = platform.group("model") if platform else str(body["model"])
        msg_id = reply.id or f"msg_fake{next(_ids):04d}"
        if bedrock is not None and bedrock.group("op") == "invoke-with-response-stream":
            self._bedrock_stream(reply, model, msg_id, request_id)
        elif bedrock is None and body.get("stream"):  # Anthropic API and Vertex stream SSE
            self._sse(reply, model, msg_id, request_id)
        else:
            self._json(200, message_json(reply, model, msg_id), request_id)

    @staticmethod
    def _validate(body: Any, platform: bool) -> str | None:
        if not isinstance(body, dict):
            return "Request body must be a JSON object"
        if not platform and not isinstance(body.get("model"), str):
            return "model: Field required"
        if platform and body.get("anthropic_version") is None:
            return "anthropic_version: Field required"
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            return "max_tokens: Field required"
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return "max_tokens: Input should be greater than or equal to 1"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: at least one message is required"
        return None

    def _json(
        self, status: int, payload: Any, request_id: str, extra: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", request_id)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _start_chunked(self, content_type: str, request_id: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", request_id)
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _deliver(self, reply: Reply, frames: list[bytes], error: bytes | None) -> None:
        try:
            for i, frame in enumerate(frames):
                if reply.error_after is not None and i == reply.error_after and error is not None:
                    self._chunk(error)
                    break
                if reply.pause_after is not None and i == reply.pause_after:
                    self.server.fake.wait_resume()
                if i and reply.chunk_delay:
                    time.sleep(reply.chunk_delay)
                self._chunk(frame)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading
            self.close_connection = True

    def _sse(self, reply: Reply, model: str, msg_id: str, request_id: str) -> None:
        self._start_chunked("text/event-stream; charset=utf-8", request_id)
        frames = [
            f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode()
            for e in stream_events(reply, model, msg_id)
        ]
        err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        self._deliver(reply, frames, f"event: error\ndata: {json.dumps(err)}\n\n".encode())

    def _bedrock_stream(self, reply: Reply, model: str, msg_id: str, request_id: str) -> None:
        self._start_chunked("application/vnd.amazon.eventstream", request_id)
        headers = {
            ":event-type": "chunk",
            ":content-type": "application/json",
            ":message-type": "event",
        }
        frames = [
            eventstream_frame(
                headers,
                json.dumps({"bytes": base64.b64encode(json.dumps(e).encode()).decode()}).encode(),
            )
            for e in stream_events(reply, model, msg_id)
        ]
        exc_headers = {
            ":exception-type": "throttlingException",
            ":content-type": "application/json",
            ":message-type": "exception",
        }
        error = eventstream_frame(exc_headers, b'{"message":"Too many requests"}')
        self._deliver(reply, frames, error)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeAnthropic


class FakeAnthropic:
    """The server; a context manager that starts it on a free 127.0.0.1 port."""

    def __init__(self) -> None:
        self._replies: queue.SimpleQueue[Reply | ErrorReply] = queue.SimpleQueue()
        self._resume = threading.Event()
        #: Set while a stream is held by ``pause_after`` (the rest of it is not sent yet).
        self.paused = threading.Event()
        self.pause_timeout = _PAUSE_TIMEOUT_S
        self.received: list[Received] = []
        #: The ``request-id`` header of the latest response.
        self.last_request_id = ""
        #: Answers from the request body when nothing is scripted (concurrent agents).
        self.responder: Callable[[dict[str, Any]], Reply | ErrorReply] | None = None
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def script(self, *replies: Reply | ErrorReply) -> None:
        """Queue the next replies, in order (unscripted requests get a default :class:`Reply`)."""
        for reply in replies:
            self._replies.put(reply)

    def next_reply(self, body: Any = None) -> Reply | ErrorReply:
        """The next scripted reply, else what :attr:`responder` says for ``body``, else a default."""
        try:
            return self._replies.get_nowait()
        except queue.Empty:
            pass
        if self.responder is not None and body is not None:
            return self.responder(body)
        return Reply()

    def resume(self) -> None:
        """Release a stream held by ``pause_after``."""
        self._resume.set()

    def wait_resume(self) -> None:
        self.paused.set()
        try:
            self._resume.wait(self.pause_timeout)
        finally:
            self.paused.clear()
            self._resume.clear()

    def start(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._resume.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
