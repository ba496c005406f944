"""``invoke_model`` for every model family's body format, the read-once ``StreamingBody``,
embeddings, usage (body and response headers), errors."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ResponseStreamingError
from botocore.response import StreamingBody
from fakes.bedrock_server import ErrorReply, FakeBedrock, JsonReply
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

CLAUDE = "anthropic.claude-3-5-sonnet-20241022-v2:0"


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


PARAMS = {
    "gen_ai.request.max_tokens": 64,
    "gen_ai.request.temperature": 0.25,
    "gen_ai.request.top_p": 0.75,
}
# (model id, request body, operation, extra expected request attributes, finish reason)
CASES: list[tuple[str, dict[str, Any], str, dict[str, Any], str]] = [
    (
        CLAUDE,
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 64,
            "temperature": 0.25,
            "top_p": 0.75,
            "top_k": 40,
            "stop_sequences": ["STOP"],
            "messages": [{"role": "user", "content": "hello bedrock"}],
        },
        "chat",
        {"gen_ai.request.top_k": 40, "gen_ai.request.stop_sequences": ("STOP",)},
        "end_turn",
    ),
    (
        "anthropic.claude-v2:1",
        {
            "prompt": "\n\nHuman: hello bedrock\n\nAssistant:",
            "max_tokens_to_sample": 64,
            "temperature": 0.25,
            "top_p": 0.75,
        },
        "text_completion",
        {},
        "stop_sequence",
    ),
    (
        "amazon.titan-text-express-v1",
        {
            "inputText": "hello bedrock",
            "textGenerationConfig": {
                "maxTokenCount": 64,
                "temperature": 0.25,
                "topP": 0.75,
                "stopSequences": ["User:"],
            },
        },
        "text_completion",
        {"gen_ai.request.stop_sequences": ("User:",)},
        "FINISH",
    ),
    (
        "us.amazon.nova-pro-v1:0",
        {
            "schemaVersion": "messages-v1",
            "system": [{"text": "be brief"}],
            "messages": [{"role": "user", "content": [{"text": "hello bedrock"}]}],
            "inferenceConfig": {
                "max_new_tokens": 64,
                "temperature": 0.25,
                "top_p": 0.75,
                "top_k": 20,
            },
        },
        "chat",
        {"gen_ai.request.top_k": 20},
        "end_turn",
    ),
    (
        "meta.llama3-8b-instruct-v1:0",
        {"prompt": "hello bedrock", "max_gen_len": 64, "temperature": 0.25, "top_p": 0.75},
        "text_completion",
        {},
        "stop",
    ),
    (
        "cohere.command-text-v14",
        {"prompt": "hello bedrock", "max_tokens": 64, "temperature": 0.25, "p": 0.75, "k": 10},
        "text_completion",
        {"gen_ai.request.top_k": 10},
        "COMPLETE",
    ),
    (
        "cohere.command-r-v1:0",
        {
            "message": "hello bedrock",
            "preamble": "be brief",
            "max_tokens": 64,
            "temperature": 0.25,
            "p": 0.75,
            "seed": 7,
            "frequency_penalty": 0.5,
            "presence_penalty": 0.25,
        },
        "chat",
        {
            "gen_ai.request.seed": 7,
            "gen_ai.request.frequency_penalty": 0.5,
            "gen_ai.request.presence_penalty": 0.25,
        },
        "COMPLETE",
    ),
    (
        "mistral.mixtral-8x7b-instruct-v0:1",
        {
            "prompt": "<s>[INST] hello bedrock [/INST]",
            "max_tokens": 64,
            "temperature": 0.25,
            "top_p": 0.75,
            "stop": ["</s>"],
        },
        "text_completion",
        {"gen_ai.request.stop_sequences": ("</s>",)},
        "stop",
    ),
    (
        "mistral.mistral-large-2407-v1:0",
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hello bedrock"},
            ],
            "max_tokens": 64,
            "temperature": 0.25,
            "top_p": 0.75,
        },
        "chat",
        {},
        "stop",
    ),
]


@pytest.mark.parametrize(
    ("model", "body", "operation", "extra", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_family_bodies(
    client: Any,
    one_span: Callable[[], ReadableSpan],
    model: str,
    body: dict[str, Any],
    operation: str,
    extra: dict[str, Any],
    reason: str,
) -> None:
    response = client.invoke_model(modelId=model, body=json.dumps(body))
    raw = response["body"].read()
    assert b"Echo: hello bedrock" in raw
    headers = response["ResponseMetadata"]["HTTPHeaders"]

    span = one_span()
    a = attrs(span)
    assert span.name == f"{operation} {model}"
    assert a["gen_ai.operation.name"] == operation
    assert a["gen_ai.provider.name"] == "aws.bedrock"
    assert a["spanlake.span.type"] == ("CHAT_MODEL" if operation == "chat" else "LLM")
    for key, value in {**PARAMS, **extra}.items():
        assert a[key] == pytest.approx(value) if isinstance(value, float) else a[key] == value, key
    assert a["gen_ai.response.finish_reasons"] == (reason,)
    # Token counts: from the body where the family reports them, else Bedrock's headers.
    assert a["gen_ai.usage.input_tokens"] == int(headers["x-amzn-bedrock-input-token-count"])
    assert a["gen_ai.usage.output_tokens"] == int(headers["x-amzn-bedrock-output-token-count"])

    inputs = json.loads(a["gen_ai.input.messages"])
    assert "hello bedrock" in inputs[-1]["parts"][0]["content"]
    assert inputs[-1]["role"] == "user"
    outputs = json.loads(a["gen_ai.output.messages"])
    assert outputs[0]["role"] == "assistant"
    assert outputs[0]["parts"][0]["content"].startswith("Echo:")
    assert "hello bedrock" in outputs[0]["parts"][0]["content"]
    assert outputs[0]["finish_reason"] == reason
    if "preamble" in body or "system" in body or (operation == "chat" and "mistral" in model):
        assert json.loads(a["gen_ai.system_instructions"]) == [
            {"type": "text", "content": "be brief"}
        ]


def test_streaming_body_reaches_the_app_intact(
    client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    payload = {
        "id": "msg_bdrk_x",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-sonnet-20241022",
        "content": [{"type": "text", "text": "line one\nline two"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    expected = json.dumps(payload).encode()
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "x"}],
    }
    for read in (
        lambda b: b.read(),
        lambda b: b.read(5) + b.read(),
        lambda b: b"".join(b.iter_chunks(chunk_size=7)),
        lambda b: b"\n".join(b.iter_lines()),
        lambda b: b"".join(iter(b)),
    ):
        fake.enqueue(JsonReply(payload))
        response = client.invoke_model(modelId=CLAUDE, body=json.dumps(body))
        assert isinstance(response["body"], StreamingBody)
        assert read(response["body"]) == expected
        assert response["body"].read() == b""  # still read-once, like the original
        assert response["contentType"] == "application/json"
    spans = instrumented.get_finished_spans()
    assert len(spans) == 5
    for span in spans:  # and each span saw the same body
        out = json.loads(attrs(span)["gen_ai.output.messages"])[0]
        assert out["parts"] == [{"type": "text", "content": "line one\nline two"}]


def test_streaming_body_intact_each_call_one_span(
    client: Any, instrumented: InMemorySpanExporter
) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "x"}],
    }
    response = client.invoke_model(modelId=CLAUDE, body=json.dumps(body))
    with response["body"] as stream:  # StreamingBody is a context manager: still is
        data = json.loads(stream.read())
    assert data["content"][0]["text"] == "Echo: x"
    (span,) = instrumented.get_finished_spans()
    assert json.loads(attrs(span)["gen_ai.output.messages"])[0]["parts"][0]["content"] == "Echo: x"
    assert attrs(span)["gen_ai.response.id"] == data["id"]


def test_file_like_request_body_is_left_where_the_app_put_it(
    client: Any, one_span: Callable[[], ReadableSpan]
) -> None:
    raw = json.dumps({"prompt": "from a file", "max_gen_len": 9}).encode()
    body = io.BytesIO(raw)
    response = client.invoke_model(modelId="meta.llama3-8b-instruct-v1:0", body=body)
    assert json.loads(response["body"].read())["generation"] == "Echo: from a file"
    assert attrs(one_span())["gen_ai.request.max_tokens"] == 9


def test_anthropic_body_tools_and_cache_usage(
    client: Any, fake: FakeBedrock, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.enqueue(
        JsonReply(
            {
                "id": "msg_bdrk_t",
                "type": "message",
                "role": "assistant",
                "model": "claude-3-5-sonnet-20241022",
                "content": [
                    {"type": "text", "text": "Looking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                ],
                "stop_reason": "tool_use",
                "usage": {
                    "input_tokens": 5,
                    "output_tokens": 9,
                    "cache_read_input_tokens": 1000,
                    "cache_creation_input_tokens": 50,
                },
            }
        )
    )
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        "tools": [
            {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "weather?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "aGVsbG8="},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_0",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": "rainy"}],
            },
        ],
    }
    client.invoke_model(modelId=CLAUDE, body=json.dumps(body))
    a = attrs(one_span())
    assert a["gen_ai.usage.input_tokens"] == 5 + 1000 + 50
    assert a["gen_ai.usage.cache_read.input_tokens"] == 1000
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 50
    assert a["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert json.loads(a["gen_ai.tool.definitions"]) == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather",
            "parameters": {"type": "object"},
        }
    ]
    assert json.loads(a["gen_ai.system_instructions"]) == [{"type": "text", "content": "sys"}]
    inputs = json.loads(a["gen_ai.input.messages"])
    assert [m["role"] for m in inputs] == ["user", "assistant", "tool"]
    assert inputs[0]["parts"][1] == {
        "type": "blob",
        "modality": "image",
        "mime_type": "image/png",
        "size_bytes": 6,
    }
    assert inputs[2]["parts"] == [
        {"type": "tool_call_response", "id": "toolu_0", "response": "rainy"}
    ]
    out = json.loads(a["gen_ai.output.messages"])[0]["parts"]
    assert out[1] == {
        "type": "tool_call",
        "id": "toolu_1",
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }


def test_cohere_r_tool_calls(
    client: Any, fake: FakeBedrock, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.enqueue(
        JsonReply(
            {
                "response_id": "r-1",
                "text": "",
                "finish_reason": "COMPLETE",
                "tool_calls": [{"name": "query_db", "parameters": {"table": "users"}}],
            }
        )
    )
    body = {
        "message": "how many users?",
        "tools": [
            {
                "name": "query_db",
                "description": "Run SQL",
                "parameter_definitions": {"table": {"type": "str"}},
            }
        ],
    }
    client.invoke_model(modelId="cohere.command-r-plus-v1:0", body=json.dumps(body))
    a = attrs(one_span())
    assert a["gen_ai.response.id"] == "r-1"
    assert json.loads(a["gen_ai.tool.definitions"])[0]["name"] == "query_db"
    parts = json.loads(a["gen_ai.output.messages"])[0]["parts"]
    assert parts == [
        {"type": "tool_call", "id": None, "name": "query_db", "arguments": {"table": "users"}}
    ]


@pytest.mark.parametrize(
    ("model", "body", "dims"),
    [
        ("amazon.titan-embed-text-v2:0", {"inputText": "embed me", "dimensions": 16}, 16),
        (
            "cohere.embed-english-v3",
            {"texts": ["embed me", "and me"], "input_type": "search_document"},
            8,
        ),
    ],
)
def test_embeddings(
    client: Any, one_span: Callable[[], ReadableSpan], model: str, body: dict[str, Any], dims: int
) -> None:
    response = client.invoke_model(modelId=model, body=json.dumps(body))
    data = json.loads(response["body"].read())
    span = one_span()
    a = attrs(span)
    assert span.name == f"embeddings {model}"
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["spanlake.span.type"] == "EMBEDDING"
    assert a["gen_ai.embeddings.dimension.count"] == dims
    assert a["gen_ai.usage.input_tokens"] == int(
        response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"]
    )
    assert "gen_ai.input.messages" not in a
    assert data  # the app still gets its embeddings


def test_invalid_body_error_propagates(client: Any, one_span: Callable[[], ReadableSpan]) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "messages": [{"role": "user", "content": "x"}],
    }
    with pytest.raises(client.exceptions.ValidationException, match="max_tokens"):
        client.invoke_model(modelId=CLAUDE, body=json.dumps(body))
    span = one_span()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "ValidationException"
    assert attrs(span)["gen_ai.operation.name"] == "chat"


def test_unknown_model_and_non_json_body_still_one_span(
    client: Any, fake: FakeBedrock, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.enqueue(ErrorReply("ResourceNotFoundException", 404, "Model not found"))
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke_model(modelId="stability.sd3-large-v1:0", body=b"\x00not json")
    span = one_span()
    assert span.name == "generate_content stability.sd3-large-v1:0"
    assert attrs(span)["error.type"] == "ResourceNotFoundException"


def test_application_inference_profile_arn_falls_back_to_body_shape(
    client: Any, one_span: Callable[[], ReadableSpan], fake: FakeBedrock
) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
    fake.enqueue(
        JsonReply(
            {
                "generation": "hi",
                "prompt_token_count": 2,
                "generation_token_count": 1,
                "stop_reason": "stop",
            }
        )
    )
    client.invoke_model(modelId=arn, body=json.dumps({"prompt": "x", "max_gen_len": 5}))
    a = attrs(one_span())
    assert a["gen_ai.request.model"] == arn
    assert a["gen_ai.request.max_tokens"] == 5
    assert a["gen_ai.usage.output_tokens"] == 1


def test_body_cut_short_app_sees_the_same_error_on_its_read(
    client: Any, fake: FakeBedrock, one_span: Callable[[], ReadableSpan]
) -> None:
    """If the response body cannot be read, the app still gets the error, on its own read."""
    reply = {"completion": "x" * 500, "stop_reason": "stop_sequence"}
    fake.enqueue(JsonReply(reply, truncate_to=100))
    response = client.invoke_model(
        modelId="anthropic.claude-v2", body=json.dumps({"prompt": "p", "max_tokens_to_sample": 5})
    )
    # The very error botocore raises without instrumentation (checked by hand: same class).
    with pytest.raises(ResponseStreamingError, match="IncompleteRead"):
        response["body"].read()
    span = one_span()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "ResponseStreamingError"


def test_a_parser_bug_is_not_an_app_error(
    client: Any, one_span: Callable[[], ReadableSpan], monkeypatch: pytest.MonkeyPatch
) -> None:
    from spanlake.instrumentation.bedrock import _families

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("telemetry bug")

    monkeypatch.setattr(_families.Llama, "response", broken)
    monkeypatch.setattr(_families.Llama, "request", broken)
    response = client.invoke_model(
        modelId="meta.llama3-8b-instruct-v1:0", body=json.dumps({"prompt": "still fine"})
    )
    assert json.loads(response["body"].read())["generation"] == "Echo: still fine"
    span = one_span()
    assert span.status.status_code is StatusCode.UNSET
    assert attrs(span)["gen_ai.usage.input_tokens"] > 0  # headers still read


@pytest.mark.parametrize(
    ("body", "operation"),
    [
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}, "chat"),
        ({"prompt": "hi", "max_gen_len": 5}, "text_completion"),
    ],
)
def test_operation_from_body_shape_also_on_the_error_path(
    client: Any,
    fake: FakeBedrock,
    one_span: Callable[[], ReadableSpan],
    body: dict[str, Any],
    operation: str,
) -> None:
    """Issue 11: one rule names the operation from the request body (chat-style messages ->
    chat, a bare prompt -> text_completion), also for an invalid model id that fails."""
    fake.enqueue(ErrorReply("ValidationException", 400, "The provided model identifier is invalid."))
    with pytest.raises(client.exceptions.ValidationException):
        client.invoke_model(modelId="does-not-exist", body=json.dumps(body))
    span = one_span()
    assert span.name == f"{operation} does-not-exist"
    assert attrs(span)["gen_ai.operation.name"] == operation
    assert attrs(span)["error.type"] == "ValidationException"
