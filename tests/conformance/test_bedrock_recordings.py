"""Bedrock recordings (contrib botocore suite) replayed through the real ``boto3`` client.

Each call is the recorded request (model id from the URL, body as sent) made with the
boto3 operation that sent it, consumed the way the recording's test consumed it (read to the
end, closed before reading, or failed by an injected ``EventStreamError``). Expectations come
from the recorded response bytes and headers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from unittest import mock
from urllib.parse import unquote

import boto3
import pytest
from botocore.config import Config
from botocore.eventstream import EventStream, EventStreamError
from botocore.exceptions import ClientError
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlake.instrumentation.bedrock import BedrockInstrumentor

from ._expect import Expected, Message, check
from ._recordings import Interaction, event_stream, load, on_disk, replay, require_root

# A missing recordings folder still yields one case, which fails under CI and skips elsewhere.
NAMES = sorted(n for n in on_disk() if n.startswith("botocore/")) or ["botocore/<recordings missing>"]


@pytest.fixture(scope="module")
def instrumented() -> Iterator[None]:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)  # the session's (tests/conftest.py)
    inst = BedrockInstrumentor()
    inst.instrument(tracer_provider=provider)
    yield
    inst.uninstrument()


@pytest.fixture(scope="module")
def client() -> Any:
    return boto3.client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="test",
        aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}),
    )


def _split(uri: str) -> tuple[str, str]:
    """``(model id, operation path)`` from ``.../model/{id}/{op}``."""
    model, op = uri.split("/model/", 1)[1].rsplit("/", 1)
    return unquote(model), op


def _call(name: str, client: Any, it: Interaction) -> None:
    model, op = _split(it.uri)
    body = it.request_body
    if op in ("converse", "converse-stream"):
        method = client.converse if op == "converse" else client.converse_stream
        kwargs: dict[str, Any] = {"modelId": model, **body}
    else:
        method = client.invoke_model if op == "invoke" else client.invoke_model_with_response_stream
        kwargs = {"modelId": model, "body": json.dumps(body) if body is not None else b""}
    if it.status >= 400:
        with pytest.raises(ClientError):
            method(**kwargs)
        return
    result = method(**kwargs)
    stream = result.get("stream") if op == "converse-stream" else result.get("body")
    if op == "invoke":
        stream.read()
    elif "close_before_consumption" in name:
        stream.close()
    elif "handles" in name and "error" in name:
        # The recording test's fault: every event fails to parse.
        fault = EventStreamError({"modelStreamErrorException": {}}, "Injected")
        with mock.patch.object(EventStream, "_parse_event", side_effect=fault):
            with pytest.raises(EventStreamError):
                for _ in stream:
                    pass
    elif op != "converse":
        assert list(stream)


# --- expectations from the bytes -------------------------------------------------------

# request body key -> attribute, per body shape (top level or its config object)
_PARAMS = {
    "maxTokens": "gen_ai.request.max_tokens", "max_new_tokens": "gen_ai.request.max_tokens",
    "maxTokenCount": "gen_ai.request.max_tokens", "max_tokens": "gen_ai.request.max_tokens",
    "max_gen_len": "gen_ai.request.max_tokens", "temperature": "gen_ai.request.temperature",
    "topP": "gen_ai.request.top_p", "top_p": "gen_ai.request.top_p", "p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k", "stopSequences": "gen_ai.request.stop_sequences",
    "stop_sequences": "gen_ai.request.stop_sequences", "stop": "gen_ai.request.stop_sequences",
}


def _params(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        return {}
    source = {**body, **body.get("inferenceConfig", {}), **body.get("textGenerationConfig", {})}
    out = {}
    for key, attr in _PARAMS.items():
        if key in source:
            value = source[key]
            out[attr] = tuple(value) if isinstance(value, list) else value
    return out


def _operation(op: str, body: Any) -> str:
    """Converse is chat; invoke_model follows the documented body-shape rule (bedrock/_families):
    chat-style messages -> chat, a bare prompt -> text_completion, no JSON object (the
    recordings' invalid-model calls send an empty body) -> generate_content. The contrib
    suite expects ``chat`` for those empty bodies; an empty body holds no chat, so we follow
    the rule."""
    if op.startswith("converse"):
        return "chat"
    if not isinstance(body, dict):
        return "generate_content"
    return "chat" if "messages" in body or "message" in body else "text_completion"


def _blocks(content: list[dict[str, Any]]) -> Message:
    """Converse/Nova blocks (``text``/``toolUse``) or Anthropic blocks (``type``)."""
    texts, calls = [], []
    for block in content:
        if block.get("type") == "text" or ("text" in block and "type" not in block):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            calls.append((block["id"], block["name"], block["input"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append((use["toolUseId"], use["name"], use["input"]))
    return Message(text="".join(texts) or None, tool_calls=calls)


def _invoke_result(body: dict[str, Any]) -> tuple[Message, str | None, str | None, str | None]:
    """(message, finish reason, response id, response model) of one invoke_model body."""
    if "output" in body:  # Nova
        return _blocks(body["output"]["message"]["content"]), body.get("stopReason"), None, None
    if "results" in body:  # Titan text
        r = body["results"][0]
        return Message(text=r["outputText"]), r.get("completionReason"), None, None
    if body.get("type") == "message":  # Anthropic Messages
        return _blocks(body["content"]), body.get("stop_reason"), body["id"], body["model"]
    if "generations" in body:  # Cohere Command
        g = body["generations"][0]
        return Message(text=g["text"]), g.get("finish_reason"), body.get("id"), None
    if "generation" in body:  # Llama
        return Message(text=body["generation"]), body.get("stop_reason"), None, None
    if "outputs" in body:  # Mistral
        o = body["outputs"][0]
        return Message(text=o["text"]), o.get("stop_reason"), None, None
    if "text" in body:  # Cohere Command R
        return Message(text=body["text"]), body.get("finish_reason"), body.get("response_id"), None
    raise AssertionError(f"unknown invoke_model response shape: {sorted(body)}")


def _converse_stream(events: list[tuple[str, dict[str, Any]]]) -> tuple[Message, str | None, dict[str, Any]]:
    texts: dict[int, str] = {}
    calls: dict[int, dict[str, Any]] = {}
    stop, usage = None, {}
    for kind, e in events:
        if kind == "contentBlockStart" and "toolUse" in e.get("start", {}):
            use = e["start"]["toolUse"]
            calls[e["contentBlockIndex"]] = {"id": use["toolUseId"], "name": use["name"], "input": ""}
        elif kind == "contentBlockDelta":
            delta, i = e["delta"], e["contentBlockIndex"]
            if "text" in delta:
                texts[i] = texts.get(i, "") + delta["text"]
            elif "toolUse" in delta:
                calls[i]["input"] += delta["toolUse"]["input"]
        elif kind == "messageStop":
            stop = e.get("stopReason")
        elif kind == "metadata":
            usage = e.get("usage", {})
    message = Message(
        text="".join(t for _, t in sorted(texts.items())) or None,
        tool_calls=[(c["id"], c["name"], json.loads(c["input"] or "{}")) for _, c in sorted(calls.items())],
        finish_reason=stop,
    )
    return message, stop, usage


def _invoke_stream(chunks: list[dict[str, Any]]) -> tuple[Message, str | None, str | None, str | None, dict[str, Any]]:
    """Fold invoke_model_with_response_stream chunks by family (Anthropic, Nova, Titan)."""
    texts: dict[int, str] = {}
    calls: dict[int, dict[str, Any]] = {}
    stop = rid = model = None
    metrics: dict[str, Any] = {}
    usage: dict[str, Any] = {}  # Anthropic's own counts (message_start / message_delta)
    for c in chunks:
        metrics = c.get("amazon-bedrock-invocationMetrics", metrics)
        kind = c.get("type")
        if kind == "message_start":
            rid, model = c["message"]["id"], c["message"]["model"]
            usage["inputTokenCount"] = c["message"].get("usage", {}).get("input_tokens")
        elif kind == "content_block_start" and c["content_block"]["type"] == "tool_use":
            b = c["content_block"]
            calls[c["index"]] = {"id": b["id"], "name": b["name"], "input": ""}
        elif kind == "content_block_delta":
            d = c["delta"]
            if d["type"] == "text_delta":
                texts[c["index"]] = texts.get(c["index"], "") + d["text"]
            elif d["type"] == "input_json_delta":
                calls[c["index"]]["input"] += d["partial_json"]
        elif kind == "message_delta":
            stop = c["delta"].get("stop_reason") or stop
            usage["outputTokenCount"] = c.get("usage", {}).get("output_tokens")
        elif "contentBlockStart" in c and "toolUse" in c["contentBlockStart"].get("start", {}):
            i = c["contentBlockStart"]["contentBlockIndex"]
            use = c["contentBlockStart"]["start"]["toolUse"]
            calls[i] = {"id": use["toolUseId"], "name": use["name"], "input": ""}
        elif "contentBlockDelta" in c:
            i, d = c["contentBlockDelta"]["contentBlockIndex"], c["contentBlockDelta"]["delta"]
            if "text" in d:
                texts[i] = texts.get(i, "") + d["text"]
            elif "toolUse" in d:
                calls[i]["input"] += d["toolUse"]["input"]
        elif "messageStop" in c:
            stop = c["messageStop"].get("stopReason")
        elif "outputText" in c:  # Titan
            texts[0] = texts.get(0, "") + c["outputText"]
            stop = c.get("completionReason") or stop
    message = Message(
        text="".join(t for _, t in sorted(texts.items())) or None,
        tool_calls=[(c["id"], c["name"], json.loads(c["input"] or "{}")) for _, c in sorted(calls.items())],
        finish_reason=stop,
    )
    # Where a recording carries both (Anthropic on Bedrock), the model's own usage wins over
    # Bedrock's invocationMetrics: they can disagree (one recording: 134 output tokens in
    # message_delta, 90 in the metrics) and the model's count is what the Anthropic SDK
    # reports for the same call through AnthropicBedrock, so both routes record one number.
    counts = {k: usage.get(k) if usage.get(k) is not None else metrics.get(k)
              for k in ("inputTokenCount", "outputTokenCount")}
    return message, stop, rid, model, counts


def _texts(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return []
    out = [body[k] for k in ("prompt", "inputText", "message") if isinstance(body.get(k), str)]
    for m in body.get("messages", []):
        content = m["content"]
        if isinstance(content, str):
            out.append(content)
        else:
            out += [b["text"] for b in content if isinstance(b.get("text"), str)]
    return out


def expected(name: str, it: Interaction) -> Expected:
    model, op = _split(it.uri)
    body = it.request_body
    want = Expected(operation=_operation(op, body), provider="aws.bedrock", request_model=model,
                    params=_params(body), streaming=op.endswith("stream"), input_texts=_texts(body))
    if it.status >= 400:
        want.error_type = json.loads(it.body).get("__type") or it.headers["x-amzn-errortype"].split(":")[0]
        want.error_type = want.error_type.rsplit("#", 1)[-1]
        return want
    if "close_before_consumption" in name:
        want.stream_end, want.outputs = "closed", [Message()]
        return want
    if "handles" in name and "error" in name:
        want.stream_end, want.error_type = "error", "EventStreamError"
        return want
    if op == "converse":
        r = it.json()
        message = _blocks(r["output"]["message"]["content"])
        message.finish_reason = r["stopReason"]
        want.finish_reasons = (r["stopReason"],)
        want.input_tokens, want.output_tokens = r["usage"]["inputTokens"], r["usage"]["outputTokens"]
        want.outputs = [message]
        return want
    if op == "converse-stream":
        message, stop, usage = _converse_stream(event_stream(it.body))
        want.finish_reasons = (stop,) if stop else None
        want.input_tokens, want.output_tokens = usage.get("inputTokens"), usage.get("outputTokens")
        want.outputs, want.stream_end = [message], "exhausted"
        return want
    if op == "invoke":
        message, stop, want.response_id, want.response_model = _invoke_result(it.json())
        message.finish_reason = stop
        want.finish_reasons = (stop,) if stop else None
        # Token counts from the response headers: Bedrock's own count for every family.
        want.input_tokens = int(it.headers["x-amzn-bedrock-input-token-count"])
        want.output_tokens = int(it.headers["x-amzn-bedrock-output-token-count"])
        want.outputs = [message]
        return want
    chunks = [payload for kind, payload in event_stream(it.body) if kind == "chunk"]
    message, stop, want.response_id, want.response_model, metrics = _invoke_stream(chunks)
    want.finish_reasons = (stop,) if stop else None
    want.input_tokens = metrics.get("inputTokenCount")
    want.output_tokens = metrics.get("outputTokenCount")
    want.outputs, want.stream_end = [message], "exhausted"
    return want


@pytest.mark.parametrize("name", NAMES)
def test_recording(
    name: str, instrumented: None, client: Any, span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One recording: the real boto3 call on the recorded bytes gives the span they imply."""
    require_root()
    content = "no_content" not in name
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
                       "SPAN_ONLY" if content else "NO_CONTENT")
    interactions = load(name)
    with replay(name):
        for it in interactions:
            _call(name, client, it)
    spans = span_exporter.get_finished_spans()
    assert len(spans) == len(interactions), [s.name for s in spans]
    for span, it in zip(spans, interactions, strict=True):
        check(span, expected(name, it), content=content)
