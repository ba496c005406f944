"""A loopback Amazon Bedrock Runtime that the real boto3 ``bedrock-runtime`` client talks to.

It speaks the real wire formats, so the tests exercise botocore's own serializers and parsers:

- ``POST /model/{modelId}/converse`` and ``/invoke``: JSON bodies (``/invoke`` in each model
  family's own body format: Anthropic messages and legacy completions, Amazon Titan text and
  embeddings, Amazon Nova, Meta Llama, Cohere command / command-r / embed, Mistral prompt and
  chat), with the ``X-Amzn-Bedrock-*-Token-Count`` headers Bedrock adds;
- ``/converse-stream`` and ``/invoke-with-response-stream``: ``application/vnd.amazon.eventstream``
  frames (prelude with total and headers length and CRC32, ``:event-type`` /
  ``:content-type`` / ``:message-type`` headers, payload, message CRC32) sent with chunked
  transfer encoding, one frame at a time, so a client sees them in real time;
- errors as Bedrock sends them: status code, ``x-amzn-ErrorType`` header and
  ``{"message": ...}`` body, which botocore turns into the right ``ClientError``; in-stream
  errors as ``:message-type: exception`` frames.

Malformed requests are rejected like the real service (``ValidationException``). Tests can
script the next replies (:meth:`FakeBedrock.enqueue`) and slow streams (``delay_s``); every
request is recorded (:attr:`FakeBedrock.requests`).
"""

from __future__ import annotations

import base64
import binascii
import json
import queue
import struct
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

__all__ = [
    "EVENTSTREAM_CONTENT_TYPE",
    "ErrorReply",
    "FakeBedrock",
    "JsonReply",
    "RecordedRequest",
    "StreamEvent",
    "StreamReply",
    "converse_stream_events",
    "decode_frames",
    "encode_frame",
    "invoke_stream_events",
    "model_family",
]

EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING_HEADER = 7


# --- event-stream framing -----------------------------------------------------------------
def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One ``application/vnd.amazon.eventstream`` message (string headers only)."""
    encoded_headers = b""
    for name, value in headers.items():
        raw_name = name.encode("utf-8")
        raw_value = value.encode("utf-8")
        encoded_headers += (
            struct.pack("!B", len(raw_name))
            + raw_name
            + struct.pack("!BH", _STRING_HEADER, len(raw_value))
            + raw_value
        )
    total = 12 + len(encoded_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded_headers))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + encoded_headers + payload
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


def decode_frames(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Inverse of :func:`encode_frame` (for the fake's own tests)."""
    out: list[tuple[dict[str, str], bytes]] = []
    pos = 0
    while pos < len(data):
        total, headers_len = struct.unpack_from("!II", data, pos)
        (prelude_crc,) = struct.unpack_from("!I", data, pos + 8)
        if prelude_crc != binascii.crc32(data[pos : pos + 8]) & 0xFFFFFFFF:
            raise ValueError("bad prelude crc")
        (message_crc,) = struct.unpack_from("!I", data, pos + total - 4)
        if message_crc != binascii.crc32(data[pos : pos + total - 4]) & 0xFFFFFFFF:
            raise ValueError("bad message crc")
        headers: dict[str, str] = {}
        hpos = pos + 12
        end = hpos + headers_len
        while hpos < end:
            name_len = data[hpos]
            name = data[hpos + 1 : hpos + 1 + name_len].decode()
            hpos += 1 + name_len
            _kind, value_len = struct.unpack_from("!BH", data, hpos)
            hpos += 3
            headers[name] = data[hpos : hpos + value_len].decode()
            hpos += value_len
        out.append((headers, data[end : pos + total - 4]))
        pos += total
    return out


# --- scripted replies ---------------------------------------------------------------------
@dataclass
class JsonReply:
    """A 200 JSON reply (``/converse`` output or an ``/invoke`` model body)."""

    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    #: Send only this many body bytes (Content-Length still says all), then hang up.
    truncate_to: int | None = None


@dataclass
class ErrorReply:
    """An error as Bedrock sends it; botocore raises ``ClientError`` with ``error_type``."""

    error_type: str = "ValidationException"
    status: int = 400
    message: str = "Malformed input request"


@dataclass
class StreamEvent:
    """One event-stream frame: ``event_type`` is the union member (``chunk``,
    ``contentBlockDelta``, ...) or, with ``exception=True``, the error member
    (``throttlingException``, ``modelStreamErrorException``, ...)."""

    event_type: str
    payload: dict[str, Any]
    exception: bool = False

    def frame(self) -> bytes:
        """The encoded frame."""
        body = json.dumps(self.payload).encode()
        if self.exception:
            headers = {
                ":exception-type": self.event_type,
                ":content-type": "application/json",
                ":message-type": "exception",
            }
        else:
            headers = {
                ":event-type": self.event_type,
                ":content-type": "application/json",
                ":message-type": "event",
            }
        return encode_frame(headers, body)


@dataclass
class StreamReply:
    """A 200 event-stream reply; ``delay_s`` pauses before every frame (a slow model);
    ``hold_s`` keeps the connection open after the last frame."""

    events: list[StreamEvent]
    delay_s: float = 0.0
    hold_s: float = 0.0


Reply = JsonReply | ErrorReply | StreamReply


@dataclass
class RecordedRequest:
    """What the fake received."""

    method: str
    path: str
    operation: str
    model_id: str
    headers: dict[str, str]
    body: Any


# --- model families -----------------------------------------------------------------------
def model_family(model_id: str) -> str:
    """The body format a model id implies (handles ``us.`` inference profiles and ARNs)."""
    tail = model_id.rsplit("/", 1)[-1].lower()
    for family, prefixes in _FAMILY_PREFIXES:
        if any(p in tail for p in prefixes):
            return family
    return "unknown"


_FAMILY_PREFIXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("anthropic", ("anthropic.",)),
    ("titan-embed", ("amazon.titan-embed",)),
    ("titan-text", ("amazon.titan-text", "amazon.titan-tg1")),
    ("nova", ("amazon.nova",)),
    ("llama", ("meta.llama",)),
    ("cohere-embed", ("cohere.embed",)),
    ("cohere-r", ("cohere.command-r",)),
    ("cohere", ("cohere.command",)),
    ("mistral", ("mistral.",)),
)


class _Invalid(Exception):
    """A request the real service would reject with a ValidationException."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _Invalid(message)


def _words(text: str) -> list[str]:
    """``text`` cut into stream-sized pieces (word plus its leading space)."""
    parts = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        content = message.get("content")
        if isinstance(content, str):
            return content
        for block in content or []:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                return str(block["text"])
    return ""


def _echo(prompt: str) -> str:
    return f"Echo: {prompt.strip()}"[:200]


def _invocation_metrics(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "inputTokenCount": input_tokens,
        "outputTokenCount": output_tokens,
        "invocationLatency": 12,
        "firstByteLatency": 5,
    }


def _default_invoke(family: str, body: dict[str, Any]) -> tuple[dict[str, Any], int, int]:
    """(response body, input tokens, output tokens) a model of ``family`` would answer."""
    if family == "anthropic":
        if "prompt" in body:  # legacy text completions (claude v2)
            _require("max_tokens_to_sample" in body, "max_tokens_to_sample is required")
            text = _echo(str(body["prompt"]).split("Human:")[-1].replace("Assistant:", ""))
            return (
                {"completion": text, "stop_reason": "stop_sequence", "stop": "\n\nHuman:"},
                _tokens(str(body["prompt"])),
                _tokens(text),
            )
        _require(body.get("anthropic_version") is not None, "anthropic_version is required")
        _require(isinstance(body.get("max_tokens"), int), "max_tokens: field required")
        _require(bool(body.get("messages")), "messages: at least one message is required")
        text = _echo(_last_user_text(body["messages"]))
        inp, out = _tokens(json.dumps(body["messages"])), _tokens(text)
        return (
            {
                "id": "msg_bdrk_" + uuid.uuid4().hex[:20],
                "type": "message",
                "role": "assistant",
                "model": "claude-3-5-sonnet-20241022",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": inp, "output_tokens": out},
            },
            inp,
            out,
        )
    if family == "titan-text":
        _require(isinstance(body.get("inputText"), str), "inputText is required")
        text = _echo(body["inputText"])
        inp, out = _tokens(body["inputText"]), _tokens(text)
        return (
            {
                "inputTextTokenCount": inp,
                "results": [{"tokenCount": out, "outputText": text, "completionReason": "FINISH"}],
            },
            inp,
            out,
        )
    if family == "titan-embed":
        _require(isinstance(body.get("inputText"), str), "inputText is required")
        dims = int(body.get("dimensions", 8))
        inp = _tokens(body["inputText"])
        return {"embedding": [0.125] * dims, "inputTextTokenCount": inp}, inp, 0
    if family == "nova":
        _require(bool(body.get("messages")), "messages is required")
        text = _echo(_last_user_text(body["messages"]))
        inp, out = _tokens(json.dumps(body["messages"])), _tokens(text)
        return (
            {
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": inp, "outputTokens": out, "totalTokens": inp + out},
            },
            inp,
            out,
        )
    if family == "llama":
        _require(isinstance(body.get("prompt"), str), "prompt is required")
        text = _echo(body["prompt"])
        inp, out = _tokens(body["prompt"]), _tokens(text)
        return (
            {
                "generation": text,
                "prompt_token_count": inp,
                "generation_token_count": out,
                "stop_reason": "stop",
            },
            inp,
            out,
        )
    if family == "cohere":
        _require(isinstance(body.get("prompt"), str), "prompt is required")
        text = _echo(body["prompt"])
        return (
            {
                "id": str(uuid.uuid4()),
                "prompt": body["prompt"],
                "generations": [
                    {"id": str(uuid.uuid4()), "text": text, "finish_reason": "COMPLETE"}
                ],
            },
            _tokens(body["prompt"]),
            _tokens(text),
        )
    if family == "cohere-r":
        _require(isinstance(body.get("message"), str), "message is required")
        text = _echo(body["message"])
        return (
            {
                "response_id": str(uuid.uuid4()),
                "generation_id": str(uuid.uuid4()),
                "text": text,
                "finish_reason": "COMPLETE",
                "chat_history": [
                    *body.get("chat_history", []),
                    {"role": "USER", "message": body["message"]},
                    {"role": "CHATBOT", "message": text},
                ],
            },
            _tokens(body["message"]),
            _tokens(text),
        )
    if family == "cohere-embed":
        _require(isinstance(body.get("texts"), list), "texts is required")
        texts = [str(t) for t in body["texts"]]
        return (
            {
                "id": str(uuid.uuid4()),
                "response_type": "embeddings_floats",
                "texts": texts,
                "embeddings": [[0.25] * 8 for _ in texts],
            },
            sum(_tokens(t) for t in texts),
            0,
        )
    if family == "mistral":
        if "messages" in body:
            text = _echo(_last_user_text(body["messages"]))
            return (
                {
                    "id": str(uuid.uuid4()),
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "stop_reason": "stop",
                        }
                    ],
                },
                _tokens(json.dumps(body["messages"])),
                _tokens(text),
            )
        _require(isinstance(body.get("prompt"), str), "prompt is required")
        text = _echo(body["prompt"].replace("<s>[INST]", "").replace("[/INST]", ""))
        return (
            {"outputs": [{"text": text, "stop_reason": "stop"}]},
            _tokens(body["prompt"]),
            _tokens(text),
        )
    raise _Invalid("The provided model identifier is invalid.")


def invoke_stream_events(
    family: str, body: dict[str, Any], text: str | None = None
) -> list[StreamEvent]:
    """The ``chunk`` events ``/invoke-with-response-stream`` sends for ``family``, streaming
    ``text`` (default: the echo of the prompt); the last one carries
    ``amazon-bedrock-invocationMetrics`` like the real service."""
    full, inp, out = _default_invoke(family, body)
    if text is None:
        text = _stream_text(family, full)
    pieces = _words(text)
    out = _tokens(text)
    payloads: list[dict[str, Any]] = []
    if family == "anthropic" and "messages" in body:
        payloads.append(
            {
                "type": "message_start",
                "message": {
                    "id": full["id"],
                    "type": "message",
                    "role": "assistant",
                    "model": full["model"],
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": inp, "output_tokens": 1},
                },
            }
        )
        payloads.append(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            }
        )
        payloads += [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
            for p in pieces
        ]
        payloads.append({"type": "content_block_stop", "index": 0})
        payloads.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": out},
            }
        )
        payloads.append({"type": "message_stop"})
    elif family == "titan-text":
        payloads += [
            {
                "outputText": p,
                "index": 0,
                "totalOutputTextTokenCount": i + 1,
                "completionReason": None,
                "inputTextTokenCount": inp if i == 0 else None,
            }
            for i, p in enumerate(pieces)
        ]
        payloads[-1]["completionReason"] = "FINISH"
    elif family == "nova":
        payloads.append({"messageStart": {"role": "assistant"}})
        payloads += [
            {"contentBlockDelta": {"delta": {"text": p}, "contentBlockIndex": 0}} for p in pieces
        ]
        payloads.append({"contentBlockStop": {"contentBlockIndex": 0}})
        payloads.append({"messageStop": {"stopReason": "end_turn"}})
        payloads.append(
            {
                "metadata": {
                    "usage": {"inputTokens": inp, "outputTokens": out},
                    "metrics": {},
                    "trace": {},
                }
            }
        )
    elif family == "llama":
        payloads += [
            {
                "generation": p,
                "prompt_token_count": inp if i == 0 else None,
                "generation_token_count": i + 1,
                "stop_reason": None,
            }
            for i, p in enumerate(pieces)
        ]
        payloads[-1]["stop_reason"] = "stop"
    elif family == "cohere":
        payloads += [{"text": p, "is_finished": False} for p in pieces]
        payloads.append({"is_finished": True, "finish_reason": "COMPLETE"})
    elif family == "cohere-r":
        payloads.append(
            {"is_finished": False, "event_type": "stream-start", "generation_id": "gen-1"}
        )
        payloads += [
            {"is_finished": False, "event_type": "text-generation", "text": p} for p in pieces
        ]
        payloads.append(
            {
                "is_finished": True,
                "event_type": "stream-end",
                "finish_reason": "COMPLETE",
                "response": {"text": text, "finish_reason": "COMPLETE"},
            }
        )
    elif family == "mistral":
        if "messages" in body:
            payloads += [
                {
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": p},
                            "stop_reason": None,
                        }
                    ]
                }
                for p in pieces
            ]
            payloads[-1]["choices"][0]["stop_reason"] = "stop"
        else:
            payloads += [{"outputs": [{"text": p, "stop_reason": None}]} for p in pieces]
            payloads[-1]["outputs"][0]["stop_reason"] = "stop"
    else:
        raise _Invalid("The model does not support streaming.")
    payloads[-1]["amazon-bedrock-invocationMetrics"] = _invocation_metrics(inp, out)
    return [chunk_event(p) for p in payloads]


def chunk_event(payload: dict[str, Any]) -> StreamEvent:
    """A ``chunk`` event carrying ``payload`` as its base64 ``bytes`` (like Bedrock)."""
    raw = json.dumps(payload).encode()
    return StreamEvent("chunk", {"bytes": base64.b64encode(raw).decode()})


def _stream_text(family: str, full: dict[str, Any]) -> str:
    if family == "anthropic":
        return str(full["content"][0]["text"])
    if family == "titan-text":
        return str(full["results"][0]["outputText"])
    if family == "nova":
        return str(full["output"]["message"]["content"][0]["text"])
    if family == "llama":
        return str(full["generation"])
    if family == "cohere":
        return str(full["generations"][0]["text"])
    if family == "cohere-r":
        return str(full["text"])
    if family == "mistral":
        if "choices" in full:
            return str(full["choices"][0]["message"]["content"])
        return str(full["outputs"][0]["text"])
    return ""


def _validate_converse(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    _require(isinstance(messages, list) and bool(messages), "messages: at least 1 required")
    assert isinstance(messages, list)
    _require(messages[0].get("role") == "user", "A conversation must start with a user message.")
    for message in messages:
        _require(message.get("role") in {"user", "assistant"}, "role must be user or assistant")
        _require(isinstance(message.get("content"), list), "content must be a list of blocks")
    return messages


def _default_converse(body: dict[str, Any]) -> dict[str, Any]:
    messages = _validate_converse(body)
    text = _echo(_last_user_text(messages))
    inp, out = _tokens(json.dumps(messages)), _tokens(text)
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": inp, "outputTokens": out, "totalTokens": inp + out},
        "metrics": {"latencyMs": 12},
    }


def converse_stream_events(
    text: str = "Hello there",
    *,
    stop_reason: str = "end_turn",
    usage: dict[str, int] | None = None,
    tool_use: dict[str, Any] | None = None,
) -> list[StreamEvent]:
    """The events ``/converse-stream`` sends for ``text`` (and optionally one tool call,
    ``{"toolUseId", "name", "input": dict}``, whose JSON input arrives in two pieces)."""
    events = [StreamEvent("messageStart", {"role": "assistant"})]
    index = 0
    if text:
        events += [
            StreamEvent("contentBlockDelta", {"delta": {"text": p}, "contentBlockIndex": index})
            for p in _words(text)
        ]
        events.append(StreamEvent("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    if tool_use is not None:
        start = {"toolUse": {"toolUseId": tool_use["toolUseId"], "name": tool_use["name"]}}
        events.append(
            StreamEvent("contentBlockStart", {"start": start, "contentBlockIndex": index})
        )
        raw = json.dumps(tool_use["input"])
        half = len(raw) // 2
        for piece in (raw[:half], raw[half:]):
            events.append(
                StreamEvent(
                    "contentBlockDelta",
                    {"delta": {"toolUse": {"input": piece}}, "contentBlockIndex": index},
                )
            )
        events.append(StreamEvent("contentBlockStop", {"contentBlockIndex": index}))
    events.append(StreamEvent("messageStop", {"stopReason": stop_reason}))
    if usage is None:
        out = _tokens(text) if text else 1
        usage = {"inputTokens": 10, "outputTokens": out, "totalTokens": 10 + out}
    events.append(StreamEvent("metadata", {"usage": usage, "metrics": {"latencyMs": 20}}))
    return events


# --- the server ---------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length) if length else b""
        parts = self.path.split("?", 1)[0].split("/")
        # /model/{modelId}/{operation}
        if len(parts) != 4 or parts[1] != "model":
            self._send_error(ErrorReply("UnknownOperationException", 404, "Unknown operation"))
            return
        model_id, operation = unquote(parts[2]), parts[3]
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        fake = self.server.fake
        fake.requests.append(
            RecordedRequest(
                "POST",
                self.path,
                operation,
                model_id,
                {k.lower(): v for k, v in self.headers.items()},
                body,
            )
        )
        if not self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"):
            self._send_error(ErrorReply("UnrecognizedClientException", 403, "Missing signature"))
            return
        try:
            reply = fake.next_reply() or self._default_reply(operation, model_id, body)
        except _Invalid as exc:
            reply = ErrorReply("ValidationException", 400, str(exc))
        if isinstance(reply, ErrorReply):
            self._send_error(reply)
        elif isinstance(reply, StreamReply):
            self._send_stream(reply, operation)
        else:
            self._send_json(reply, operation)

    def _default_reply(self, operation: str, model_id: str, body: Any) -> Reply:
        _require(isinstance(body, dict), "Malformed input request, please reformat your input")
        family = model_family(model_id)
        if operation == "converse":
            _require(family != "unknown", "The provided model identifier is invalid.")
            return JsonReply(_default_converse(body))
        if operation == "converse-stream":
            _require(family != "unknown", "The provided model identifier is invalid.")
            messages = _validate_converse(body)
            return StreamReply(converse_stream_events(_echo(_last_user_text(messages))))
        if operation == "invoke":
            response, inp, out = _default_invoke(family, body)
            return JsonReply(
                response,
                headers={
                    "X-Amzn-Bedrock-Input-Token-Count": str(inp),
                    "X-Amzn-Bedrock-Output-Token-Count": str(out),
                    "X-Amzn-Bedrock-Invocation-Latency": "12",
                },
            )
        if operation == "invoke-with-response-stream":
            return StreamReply(invoke_stream_events(family, body))
        raise _Invalid(f"Unknown operation {operation}")

    def _common_headers(self) -> None:
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Date", self.date_time_string())

    def _send_json(self, reply: JsonReply, operation: str) -> None:
        if reply.delay_s:
            time.sleep(reply.delay_s)
        payload = json.dumps(reply.body).encode()
        self.send_response(200)
        self._common_headers()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if reply.truncate_to is not None:
            self.wfile.write(payload[: reply.truncate_to])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)

    def _send_error(self, reply: ErrorReply) -> None:
        payload = json.dumps({"message": reply.message}).encode()
        self.send_response(reply.status)
        self._common_headers()
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-ErrorType", f"{reply.error_type}:http://internal.amazon.com/")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_stream(self, reply: StreamReply, operation: str) -> None:
        self.send_response(200)
        self._common_headers()
        self.send_header("Content-Type", EVENTSTREAM_CONTENT_TYPE)
        if operation == "invoke-with-response-stream":
            self.send_header("X-Amzn-Bedrock-Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in reply.events:
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                frame = event.frame()
                self.wfile.write(f"{len(frame):X}\r\n".encode() + frame + b"\r\n")
                self.wfile.flush()
            if reply.hold_s:
                time.sleep(reply.hold_s)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client closed the stream early


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeBedrock

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that closes a stream early resets the connection: not a server bug.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class FakeBedrock:
    """The fake service: ``with FakeBedrock() as fake: fake.client().converse(...)``."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._replies: queue.SimpleQueue[Reply] = queue.SimpleQueue()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeBedrock:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeBedrock:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def enqueue(self, *replies: Reply) -> None:
        """Serve ``replies`` (in order) to the next requests, whatever they ask."""
        for reply in replies:
            self._replies.put(reply)

    def next_reply(self) -> Reply | None:
        try:
            return self._replies.get_nowait()
        except queue.Empty:
            return None

    def client(self, **config: Any) -> Any:
        """A real boto3 ``bedrock-runtime`` client pointed here (dummy credentials, one
        attempt so error tests see the first error)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=self.endpoint_url,
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            config=Config(retries={"total_max_attempts": 1}, **config),
        )

    def requests_for(self, operation: str) -> Iterator[RecordedRequest]:
        return (r for r in self.requests if r.operation == operation)
