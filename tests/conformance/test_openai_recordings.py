"""OpenAI recordings (contrib ``openai-v2`` suite) replayed through the real ``openai`` SDK.

Each call is the recorded request body passed as keyword arguments to the SDK method that
sent it (sync or async, ``with_raw_response`` where the recording's test used it), consumed
the way that test consumed it. Expectations come from the recorded response bytes.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlake.instrumentation.openai import OpenAIInstrumentor

from ._expect import Expected, Message, check
from ._recordings import Interaction, load, on_disk, replay, require_root, sse_data

# A missing recordings folder still yields one case, which fails under CI and skips elsewhere.
NAMES = sorted(n for n in on_disk() if n.startswith("openai-v2/")) or ["openai-v2/<recordings missing>"]


@pytest.fixture(scope="module")
def instrumented() -> Iterator[None]:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)  # the session's (tests/conftest.py)
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=provider)
    yield
    inst.uninstrument()


# --- expectations from the bytes -------------------------------------------------------

_CHAT_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "seed": "gen_ai.request.seed",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "service_tier": "openai.request.service_tier",
    "max_output_tokens": "gen_ai.request.max_tokens",
}


def _params(body: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    params = {attr: body[k] for k, attr in _CHAT_PARAMS.items() if body.get(k) is not None}
    absent = ["gen_ai.request.top_p"] if "top_p" not in body else []
    if "stop" in body:
        stop = body["stop"]
        params["gen_ai.request.stop_sequences"] = (stop,) if isinstance(stop, str) else tuple(stop)
    # Semconv: choice.count only when not 1.
    if body.get("n", 1) != 1:
        params["gen_ai.request.choice.count"] = body["n"]
    else:
        absent.append("gen_ai.request.choice.count")
    fmt = (body.get("response_format") or (body.get("text") or {}).get("format") or {}).get("type")
    if fmt:
        params["gen_ai.output.type"] = "json" if fmt.startswith("json") else fmt
    return params, tuple(absent)


def _inputs(body: dict[str, Any]) -> list[str]:
    texts = [m["content"] for m in body.get("messages", []) if isinstance(m.get("content"), str)]
    for key in ("input", "instructions"):
        value = body.get(key)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            texts += [v if isinstance(v, str) else v.get("content") for v in value]
    return [t for t in texts if isinstance(t, str)]


def _args(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _chat_message(choice: dict[str, Any], message: dict[str, Any]) -> Message:
    calls = [
        (c.get("id"), c["function"]["name"], _args(c["function"].get("arguments") or ""))
        for c in message.get("tool_calls") or []
    ]
    return Message(text=message.get("content") or None, tool_calls=calls,
                   finish_reason=choice.get("finish_reason"))


def _chat_stream(chunks: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Message]]:
    """Fold chunks the way a reader of the stream would: text joined, tool calls by index."""
    top: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        top.setdefault("id", chunk.get("id"))
        top.setdefault("model", chunk.get("model"))
        if chunk.get("usage"):
            top["usage"] = chunk["usage"]
        for c in chunk.get("choices") or []:
            acc = choices.setdefault(c["index"], {"content": "", "calls": {}, "finish": None})
            delta = c.get("delta") or {}
            acc["content"] += delta.get("content") or ""
            for tc in delta.get("tool_calls") or []:
                call = acc["calls"].setdefault(tc["index"], {"id": None, "name": "", "args": ""})
                call["id"] = tc.get("id") or call["id"]
                fn = tc.get("function") or {}
                call["name"] = fn.get("name") or call["name"]
                call["args"] += fn.get("arguments") or ""
            acc["finish"] = c.get("finish_reason") or acc["finish"]
    messages = [
        Message(
            text=acc["content"] or None,
            tool_calls=[(c["id"], c["name"], _args(c["args"])) for _, c in sorted(acc["calls"].items())],
            finish_reason=acc["finish"],
        )
        for _, acc in sorted(choices.items())
    ]
    return top, messages


def _responses_message(result: dict[str, Any]) -> tuple[Message, str | None]:
    texts, calls = [], []
    for item in result.get("output") or []:
        if item["type"] == "message":
            texts += [c["text"] for c in item["content"] if c["type"] == "output_text"]
        elif item["type"] == "function_call":
            calls.append((item.get("call_id"), item["name"], _args(item.get("arguments") or "")))
    status = result.get("status")
    # The Responses API has no finish reason; spanlake maps the status (completed -> stop, or
    # tool_calls when the output calls a tool; incomplete -> its reason), as documented.
    if status == "completed":
        finish: str | None = "tool_calls" if calls else "stop"
    elif status == "incomplete":
        reason = (result.get("incomplete_details") or {}).get("reason")
        finish = {"max_output_tokens": "length"}.get(reason, reason)
    else:
        finish = None
    return Message(text="".join(texts) or None, tool_calls=calls, finish_reason=finish), finish


def expected(it: Interaction, consumed: int | None) -> Expected:
    """The span one interaction must produce; ``consumed``: stream chunks the app read."""
    body = it.request_body
    kind = it.uri.rsplit("/v1/", 1)[1]
    operation = {"chat/completions": "chat", "responses": "chat", "embeddings": "embeddings"}[kind]
    params, absent = _params(body) if kind != "embeddings" else ({}, ())
    want = Expected(operation=operation, provider="openai", request_model=body["model"],
                    params=params, absent=absent, streaming=bool(body.get("stream")),
                    input_texts=_inputs(body) if kind != "embeddings" else
                    ([body["input"]] if isinstance(body["input"], str) else list(body["input"])))
    if it.status >= 400:
        want.error_type = {400: "BadRequestError", 404: "NotFoundError"}[it.status]
        want.outputs = None
        return want
    if kind == "embeddings":
        result = it.json()
        want.response_model = result["model"]
        want.input_tokens = result["usage"]["prompt_tokens"]
        # dimension.count is the returned vectors' length (the bytes say it even when the app
        # asked for none; contrib records it only when requested), equal to ``dimensions``.
        vector = result["data"][0]["embedding"]
        count = len(base64.b64decode(vector)) // 4 if isinstance(vector, str) else len(vector)
        assert body.get("dimensions", count) == count
        want.params["gen_ai.embeddings.dimension.count"] = count
        return want
    if kind == "chat/completions" and not want.streaming:
        result = it.json()
        want.response_id, want.response_model = result["id"], result["model"]
        want.finish_reasons = tuple(c["finish_reason"] for c in result["choices"])
        want.input_tokens = result["usage"]["prompt_tokens"]
        want.output_tokens = result["usage"]["completion_tokens"]
        want.outputs = [_chat_message(c, c["message"]) for c in result["choices"]]
        return want
    if kind == "chat/completions":
        chunks = sse_data(it.body)
        complete = consumed is None
        top, messages = _chat_stream(chunks if complete else chunks[:consumed])
        want.response_id, want.response_model = top.get("id"), top.get("model")
        reasons = tuple(m.finish_reason for m in messages if m.finish_reason)
        want.finish_reasons = reasons or None
        if "usage" in top:
            want.input_tokens = top["usage"]["prompt_tokens"]
            want.output_tokens = top["usage"]["completion_tokens"]
        want.outputs = messages
        want.stream_end = "exhausted" if complete else "closed"
        return want
    # Responses API
    if want.streaming:
        events = sse_data(it.body)
        done = [e["response"] for e in events if e["type"] == "response.completed"]
        if consumed is not None or not done:
            started = [e["response"] for e in events[: consumed or 0] if "response" in e]
            want.response_id = started[-1]["id"] if started else None
            want.response_model = started[-1]["model"] if started else None
            want.outputs = [Message()]
            return want
        result = done[0]
    else:
        result = it.json()
    want.response_id, want.response_model = result["id"], result["model"]
    message, finish = _responses_message(result)
    want.finish_reasons = (finish,) if finish else None
    want.input_tokens = result["usage"]["input_tokens"]
    want.output_tokens = result["usage"]["output_tokens"]
    want.outputs = [message]
    if want.streaming:
        want.stream_end = "exhausted"
    return want


# --- the calls -------------------------------------------------------------------------

def _kwargs(name: str, it: Interaction) -> dict[str, Any]:
    """The recorded body as the SDK call's keyword arguments (the recording test's call)."""
    body = dict(it.request_body)
    if "extra_params" in name:  # the test passed service_tier through extra_body
        body["extra_body"] = {"service_tier": body.pop("service_tier")}
    if name.endswith("handles_not_given"):
        body.update(top_p=openai.NOT_GIVEN, max_tokens=openai.NOT_GIVEN)
    if it.uri.endswith("/embeddings") and "with_encoding_format" not in name:
        body.pop("encoding_format", None)  # the SDK's own default, not the app's argument
    if name.endswith("with_not_given_values"):
        body["dimensions"] = openai.NOT_GIVEN
    return body


def _method(client: Any, uri: str, raw: bool) -> Any:
    resource = {"chat/completions": client.chat.completions, "responses": client.responses,
                "embeddings": client.embeddings}[uri.rsplit("/v1/", 1)[1]]
    return (resource.with_raw_response if raw else resource).create


class _Injected(ConnectionError):
    pass


def _call_sync(name: str, client: openai.OpenAI, it: Interaction) -> int | None:
    """Makes the recorded call; returns how many stream chunks the app consumed (None: all)."""
    kwargs = _kwargs(name, it)
    create = _method(client, it.uri, "raw_response" in name)
    if it.status >= 400:
        with pytest.raises(openai.APIStatusError):
            create(**kwargs)
        return None
    result = create(**kwargs)
    if "raw_response" in name:
        result = result.parse()
    if not kwargs.get("stream"):
        return None
    if name.endswith("streaming_not_complete"):
        for idx, _ in enumerate(result):
            if idx == 1:
                break
        result.close()
        return 2
    if name.endswith("delegates_response_attribute"):
        assert result.response.status_code == 200
        result.close()
        return 0
    if name.endswith("streaming_user_exception"):
        with pytest.raises(ValueError, match="app failure"), result:
            for _ in result:
                raise ValueError("app failure")
        return None
    if name.endswith("finalize_idempotent"):
        list(result)
        result.close()
        result.close()
        return None
    with result:  # context-manager and plain iteration both read to the end
        assert list(result)
    return None


async def _call_async(name: str, client: openai.AsyncOpenAI, it: Interaction) -> int | None:
    kwargs = _kwargs(name, it)
    create = _method(client, it.uri, "raw_response" in name)
    if it.status >= 400:
        with pytest.raises(openai.APIStatusError):
            await create(**kwargs)
        return None
    result = await create(**kwargs)
    if "raw_response" in name:
        result = result.parse()
    if not kwargs.get("stream"):
        return None
    if name.endswith("streaming_not_complete"):
        idx = 0
        async for _ in result:
            if idx == 1:
                break
            idx += 1
        await result.close()
        return 2
    async with result:
        assert [c async for c in result]
    return None


def _content_mode(name: str) -> str:
    if "no_content" in name:
        return "NO_CONTENT"
    if "event_only" in name:
        return "EVENT_ONLY"
    return "SPAN_ONLY"


@pytest.mark.parametrize("name", NAMES)
def test_recording(
    name: str, instrumented: None, span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One recording: the real SDK call on the recorded bytes gives the span they imply."""
    require_root()
    mode = _content_mode(name)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", mode)
    monkeypatch.setenv("OPENAI_API_KEY", "test_openai_api_key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    interactions = load(name)
    short = name.split("/", 1)[1]
    consumed: list[int | None] = []
    unsampled = "unsampled" in short
    parent = (trace.NonRecordingSpan(trace.SpanContext(1, 1, is_remote=True))
              if unsampled else trace.INVALID_SPAN)
    with replay(name), trace.use_span(parent):
        if short.startswith("test_async_"):
            async def run() -> None:
                async with openai.AsyncOpenAI(max_retries=0) as aclient:
                    for it in interactions:
                        consumed.append(await _call_async(short, aclient, it))
            asyncio.run(run())
        else:
            with openai.OpenAI(max_retries=0) as client:
                for it in interactions:
                    consumed.append(_call_sync(short, client, it))
    spans = span_exporter.get_finished_spans()
    if unsampled:
        # An unsampled parent: the call works and nothing is exported.
        assert spans == ()
        return
    assert len(spans) == len(interactions), [s.name for s in spans]
    for span, it, n in zip(spans, interactions, consumed, strict=True):
        want = expected(it, n)
        if "encoding_format" in _kwargs(short, it):
            want.params["gen_ai.request.encoding_formats"] = (it.request_body["encoding_format"],)
        if short.endswith("streaming_user_exception"):
            # The app's exception inside ``with stream`` fails the span (it is what the app
            # saw); the output is what had arrived.
            want.error_type, want.outputs = "ValueError", None
            want.response_id = want.response_model = want.finish_reasons = None
            want.input_tokens = want.output_tokens = None
        check(span, want, content=mode == "SPAN_ONLY")
