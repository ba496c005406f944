"""A loopback OpenAI API for tests: a real HTTP server the real ``openai`` SDK talks to.

It speaks the wire formats the SDK parses (Chat Completions JSON and SSE, Responses JSON
and typed ``response.*`` SSE events, Embeddings with ``float`` and ``base64`` encodings)
and rejects malformed requests with the API's own error bodies, so the SDK raises its
real exceptions. Tests script *what* the model says (:class:`ChatReply`,
:class:`ResponsesReply`, :class:`ErrorReply`); the server renders it in whichever format
the request asked for (JSON or stream, with or without the usage chunk).

    with FakeOpenAI() as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="test")
        fake.script(ChatReply(text="hi", pause_after=1))
"""

from __future__ import annotations

import base64
import itertools
import json
import queue
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_CREATED = 1_763_000_000
_FINGERPRINT = "fp_fake0001"
_PAUSE_TIMEOUT_S = 10.0


@dataclass
class ToolCall:
    """A function call the model makes (chat ``tool_calls`` / responses ``function_call``)."""

    name: str
    arguments: str
    id: str = "call_1"


@dataclass
class Usage:
    """Token counts as OpenAI reports them: ``input_tokens`` already includes ``cached``."""

    input_tokens: int = 12
    output_tokens: int = 7
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass
class _Streaming:
    """How a stream is delivered: delay per chunk, a pause, a failure or a dropped socket."""

    chunk_delay: float = 0.0
    #: Stop after this many chunks until ``resume`` is set (proves real-time delivery).
    pause_after: int | None = None
    resume: threading.Event = field(default_factory=threading.Event)
    #: Send an in-stream error event after this many chunks, then end the stream.
    fail_after: int | None = None
    #: Close the socket abruptly after this many chunks (no terminating chunk).
    drop_after: int | None = None
    #: Set once the server wrote the whole stream (or stopped writing it).
    finished: threading.Event = field(default_factory=threading.Event)


@dataclass
class ChatReply(_Streaming):
    """What ``/chat/completions`` answers; one choice per entry of ``n`` copies."""

    text: str | None = "Hello from the fake."
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    id: str | None = None
    #: Split text / arguments into pieces of this many characters for streaming.
    piece: int = 4


@dataclass
class ResponsesReply(_Streaming):
    """What ``/responses`` answers: an optional message and function calls."""

    text: str | None = "Hello from the fake."
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None
    model: str | None = None
    id: str | None = None
    status: str = "completed"
    piece: int = 4


@dataclass
class ErrorReply:
    """An API error: the status code and the ``{"error": {...}}`` body the API sends."""

    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(
    message: str = "Invalid value for 'temperature'.", param: str | None = None
) -> ErrorReply:
    """A 400 ``invalid_request_error``."""
    return ErrorReply(400, message, "invalid_request_error", "invalid_value", param)


def rate_limited(retry_after: int = 1) -> ErrorReply:
    """A 429 with the ``retry-after`` and ``x-ratelimit-*`` headers the API sends."""
    return ErrorReply(
        429,
        "Rate limit reached for requests. Please try again in 1s.",
        "requests",
        "rate_limit_exceeded",
        headers={
            "retry-after": str(retry_after),
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{retry_after}s",
        },
    )


def server_error() -> ErrorReply:
    """A 500 ``server_error``."""
    return ErrorReply(
        500,
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
    )


Reply = ChatReply | ResponsesReply | ErrorReply


@dataclass
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class _Invalid(Exception):
    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(reply.message)
        self.reply = reply


def _missing(param: str) -> _Invalid:
    return _Invalid(
        ErrorReply(
            400,
            f"Missing required parameter: '{param}'.",
            "invalid_request_error",
            "missing_required_parameter",
            param,
        )
    )


def _no_model() -> _Invalid:
    return _Invalid(
        ErrorReply(
            400,
            "you must provide a model parameter",
            "invalid_request_error",
        )
    )


def _count_tokens(value: Any) -> int:
    """A deterministic stand-in for a tokenizer: words of every string in ``value``."""
    if isinstance(value, str):
        return max(len(value.split()), 1)
    if isinstance(value, dict):
        return sum(_count_tokens(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_tokens(v) for v in value)
    return 0


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-request is a test scenario, not a server bug."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FakeOpenAI:
    """The server: ``base_url`` for the SDK, ``script()`` to queue replies, ``requests`` seen."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._replies: queue.SimpleQueue[Reply] = queue.SimpleQueue()
        self._ids = itertools.count(1)
        handler = type("_Handler", (_Handler,), {"fake": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self.port: int = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, *replies: Reply) -> None:
        """Queue replies; each request takes the next one, or a default reply when none."""
        for reply in replies:
            self._replies.put(reply)

    def next_reply(self) -> Reply | None:
        try:
            return self._replies.get_nowait()
        except queue.Empty:
            return None

    def reset_ids(self) -> None:
        """Restart generated ids, so two identical runs produce identical payloads."""
        self._ids = itertools.count(1)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        self.fake.requests.append(
            RecordedRequest("POST", path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        try:
            self._check_auth()
            if not isinstance(body, dict):
                raise _Invalid(
                    ErrorReply(
                        400,
                        "We could not parse the JSON body of your request. (HINT: This likely "
                        "means you aren't using your HTTP library correctly.)",
                        "invalid_request_error",
                    )
                )
            if path.startswith("/openai/deployments/"):
                # Azure OpenAI: /openai/deployments/{deployment}/{operation}
                path = "/v1/" + path.split("/", 4)[-1]
            route = {
                "/v1/chat/completions": self._chat,
                "/v1/responses": self._responses,
                "/v1/embeddings": self._embeddings,
            }.get(path)
            if route is None:
                raise _Invalid(
                    ErrorReply(404, f"Invalid URL (POST {path})", "invalid_request_error")
                )
            route(body)
        except _Invalid as invalid:
            self._send_error(invalid.reply)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away mid-stream; that is a test scenario, not a bug

    # --- helpers --------------------------------------------------------------------------
    def _check_auth(self) -> None:
        auth = self.headers.get("authorization", "")
        if self.headers.get("api-key"):  # Azure OpenAI's key header
            return
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise _Invalid(
                ErrorReply(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    "invalid_request_error",
                )
            )

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", self.fake.new_id("req_"))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error(self, reply: ErrorReply) -> None:
        headers = {"x-should-retry": "false", **reply.headers}
        self._send_json(reply.status, reply.body(), headers)

    def _take(self, kind: type[ChatReply] | type[ResponsesReply]) -> ChatReply | ResponsesReply:
        reply = self.fake.next_reply()
        if isinstance(reply, ErrorReply):
            raise _Invalid(reply)
        if reply is None:
            return kind()
        if not isinstance(reply, kind):
            raise AssertionError(f"scripted {type(reply).__name__} for a {kind.__name__} request")
        return reply

    def _stream(self, events: list[str], opts: _Streaming, error_event: str) -> None:
        """Write SSE events as HTTP chunks, one flush per event, honouring the options."""
        self.send_response(HTTPStatus.OK)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        self.send_header("x-request-id", self.fake.new_id("req_"))
        self.end_headers()
        try:
            for index, event in enumerate(events):
                if opts.drop_after is not None and index == opts.drop_after:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if opts.fail_after is not None and index == opts.fail_after:
                    self._chunk(error_event)
                    break
                if opts.pause_after is not None and index == opts.pause_after:
                    opts.resume.wait(_PAUSE_TIMEOUT_S)
                elif index and opts.chunk_delay:
                    time.sleep(opts.chunk_delay)
                self._chunk(event)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        finally:
            opts.finished.set()

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    # --- /chat/completions ------------------------------------------------------------------
    def _chat(self, body: dict[str, Any]) -> None:
        if not body.get("model"):
            raise _no_model()
        messages = body.get("messages")
        if messages is None:
            raise _missing("messages")
        if not isinstance(messages, list) or not messages:
            raise _Invalid(
                ErrorReply(
                    400,
                    "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                    "but got an empty array instead.",
                    "invalid_request_error",
                    "empty_array",
                    "messages",
                )
            )
        for i, sent in enumerate(messages):
            if not isinstance(sent, dict) or "role" not in sent:
                raise _missing(f"messages[{i}].role")
        stream = bool(body.get("stream"))
        if body.get("stream_options") is not None and not stream:
            raise _Invalid(
                ErrorReply(
                    400,
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    "invalid_request_error",
                    param="stream_options",
                )
            )
        reply = self._take(ChatReply)
        assert isinstance(reply, ChatReply)
        n = int(body.get("n") or 1)
        usage = reply.usage or Usage(
            input_tokens=_count_tokens(messages) + 3 * len(messages),
            output_tokens=_count_tokens(reply.text or "") + 2 * len(reply.tool_calls),
        )
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        head = {
            "id": reply.id or self.fake.new_id("chatcmpl-"),
            "created": _CREATED,
            "model": reply.model or f"{body['model']}-2025-01-01",
            "system_fingerprint": _FINGERPRINT,
            "service_tier": "default",
        }
        if stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = self._chat_chunks(head, reply, n, finish, usage if include_usage else None)
            error = {
                "error": {
                    "message": "The model stopped.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
            self._stream(events, reply, f"data: {json.dumps(error)}\n\n")
            return
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in reply.tool_calls
            ]
        choices = [
            {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
            for i in range(n)
        ]
        self._send_json(
            200,
            {
                "object": "chat.completion",
                **head,
                "choices": choices,
                "usage": _chat_usage(usage, n),
            },
        )

    def _chat_chunks(
        self, head: dict[str, Any], reply: ChatReply, n: int, finish: str, usage: Usage | None
    ) -> list[str]:
        base = {"object": "chat.completion.chunk", **head}
        if usage is not None:
            base["usage"] = None  # the API sends usage: null on every chunk but the last

        def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> str:
            choice = {
                "index": index,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
            return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"

        events: list[str] = []
        for i in range(n):
            events.append(chunk(i, {"role": "assistant", "content": "", "refusal": None}))
            if reply.text:
                events += [chunk(i, {"content": p}) for p in _pieces(reply.text, reply.piece)]
            for t, call in enumerate(reply.tool_calls):
                first = {
                    "index": t,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
                events.append(chunk(i, {"tool_calls": [first]}))
                events += [
                    chunk(i, {"tool_calls": [{"index": t, "function": {"arguments": p}}]})
                    for p in _pieces(call.arguments, reply.piece)
                ]
            events.append(chunk(i, {}, finish))
        if usage is not None:
            last = {**base, "choices": [], "usage": _chat_usage(usage, n)}
            events.append(f"data: {json.dumps(last)}\n\n")
        events.append("data: [DONE]\n\n")
        return events

    # --- /responses -----------------------------------------------------------------------------
    def _responses(self, body: dict[str, Any]) -> None:
        if not body.get("model"):
            raise _missing("model")
        if body.get("input") is None and not any(
            body.get(k) for k in ("previous_response_id", "prompt", "conversation")
        ):
            raise _missing("input")
        reply = self._take(ResponsesReply)
        assert isinstance(reply, ResponsesReply)
        usage = reply.usage or Usage(
            input_tokens=_count_tokens(body.get("input"))
            + _count_tokens(body.get("instructions") or ""),
            output_tokens=_count_tokens(reply.text or "") + 2 * len(reply.tool_calls),
        )
        resp_id = reply.id or self.fake.new_id("resp_")
        output = self._responses_output(reply)
        response = {
            "id": resp_id,
            "object": "response",
            "created_at": _CREATED,
            "status": reply.status,
            "background": False,
            "error": {"code": "server_error", "message": "The model failed."}
            if reply.status == "failed"
            else None,
            "incomplete_details": {"reason": "max_output_tokens"}
            if reply.status == "incomplete"
            else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": reply.model or f"{body['model']}-2025-01-01",
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "store": True,
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": _responses_usage(usage),
            "user": None,
            "metadata": {},
        }
        if not body.get("stream"):
            self._send_json(200, response)
            return
        events = self._responses_events(response, reply)
        error = {
            "type": "error",
            "code": "server_error",
            "message": "The model stopped.",
            "param": None,
            "sequence_number": len(events),
        }
        self._stream(events, reply, f"event: error\ndata: {json.dumps(error)}\n\n")

    def _responses_output(self, reply: ResponsesReply) -> list[dict[str, Any]]:
        output: list[dict[str, Any]] = []
        if reply.text is not None:
            output.append(
                {
                    "id": self.fake.new_id("msg_"),
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {
                            "type": "output_text",
                            "text": reply.text,
                            "annotations": [],
                            "logprobs": [],
                        }
                    ],
                }
            )
        for call in reply.tool_calls:
            output.append(
                {
                    "id": self.fake.new_id("fc_"),
                    "type": "function_call",
                    "status": "completed",
                    "arguments": call.arguments,
                    "call_id": call.id,
                    "name": call.name,
                }
            )
        return output

    def _responses_events(self, response: dict[str, Any], reply: ResponsesReply) -> list[str]:
        seq = itertools.count()
        events: list[str] = []

        def emit(kind: str, **payload: Any) -> None:
            data = {"type": kind, "sequence_number": next(seq), **payload}
            events.append(f"event: {kind}\ndata: {json.dumps(data)}\n\n")

        pending = {**response, "status": "in_progress", "output": [], "usage": None}
        emit("response.created", response=pending)
        emit("response.in_progress", response=pending)
        for index, item in enumerate(response["output"]):
            if item["type"] == "message":
                text = item["content"][0]["text"]
                emit(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
                where = {"item_id": item["id"], "output_index": index, "content_index": 0}
                emit(
                    "response.content_part.added",
                    **where,
                    part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                )
                for piece in _pieces(text, reply.piece):
                    emit("response.output_text.delta", **where, delta=piece, logprobs=[])
                emit("response.output_text.done", **where, text=text, logprobs=[])
                emit("response.content_part.done", **where, part=item["content"][0])
            else:
                emit(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "arguments": ""},
                )
                for piece in _pieces(item["arguments"], reply.piece):
                    emit(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=index,
                        delta=piece,
                    )
                emit(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            emit("response.output_item.done", output_index=index, item=item)
        emit(f"response.{response['status']}", response=response)
        return events

    # --- /embeddings -----------------------------------------------------------------------------
    def _embeddings(self, body: dict[str, Any]) -> None:
        if not body.get("model"):
            raise _no_model()
        inputs = body.get("input")
        if inputs is None:
            raise _missing("input")
        if isinstance(inputs, str) or (
            isinstance(inputs, list) and inputs and isinstance(inputs[0], int)
        ):
            inputs = [inputs]
        if not inputs:
            raise _Invalid(
                ErrorReply(
                    400,
                    "'$.input' is invalid. Please check the API reference.",
                    "invalid_request_error",
                )
            )
        reply = self.fake.next_reply()
        if isinstance(reply, ErrorReply):
            raise _Invalid(reply)
        dims = int(body.get("dimensions") or 8)
        data = []
        for index in range(len(inputs)):
            vector = [round(((index + 1) * (d + 1) % 7) / 7.0, 4) for d in range(dims)]
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = (
            _count_tokens(inputs)
            if not isinstance(inputs[0], list)
            else sum(len(i) for i in inputs)
        )
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


def _chat_usage(usage: Usage, n: int = 1) -> dict[str, Any]:
    out = usage.output_tokens * n
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": out,
        "total_tokens": usage.input_tokens + out,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _responses_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
