"""Spans captured from real third-party instrumentations, normalized into one model.

The fixtures in ``tests/fixtures/dialects/`` were recorded by ``record.py`` there against
a loopback fake provider whose answers are fixed, so every number asserted here is what
the fake server sent (OpenAI: 50 prompt tokens incl. 20 cached, 10 completion, 4
reasoning; Anthropic: 12 uncached + 100 cache read + 20 cache write = 132 input, 7 out).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from spanlake.semconv import gen_ai as g
from spanlake.semconv import spanlake_attrs as s
from spanlake.semconv.dialects import detect, normalize

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dialects"
FINAL_TEXT = "It is sunny in Paris."
ALL_FIXTURES = (
    "openinference",
    "openllmetry",
    "openllmetry_legacy",
    "mlflow",
    "mlflow_genai_semconv",
    "otel_genai",
)
PART_TYPES = {"text", "tool_call", "tool_call_response", "reasoning", "uri", "blob"}
_CLAUDE = {"input": 132, "output": 7, "cache_read": 100, "cache_creation": 20}
#: provider -> expected usage of every LLM span (Claude direct or through Bedrock alike).
USAGE = {
    "openai": {"input": 50, "output": 10, "cache_read": 20},
    "anthropic": _CLAUDE,
    "aws.bedrock": _CLAUDE,
}
#: Uncached input the fake Claude reported; what a span shows when its instrumentation
#: dropped the cache counts (nothing left to add them back from).
CLAUDE_UNCACHED_INPUT = 12


@cache
def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def spans(name: str) -> list[dict[str, Any]]:
    return list(_load(name)["spans"])


def normalized(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(span, normalize(span["attributes"])) for span in spans(name)]


def messages(attrs: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = json.loads(attrs[key])
    assert isinstance(value, list)
    for msg in value:
        assert isinstance(msg["role"], str) and msg["role"]
        assert isinstance(msg["parts"], list)
        for part in msg["parts"]:
            assert part["type"] in PART_TYPES, part
        if key == g.OUTPUT_MESSAGES:
            assert msg["finish_reason"] in {"stop", "tool_call", "length", "content_filter"}
    return value


def parts_of(msgs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [p for m in msgs for p in m["parts"] if p["type"] == kind]


def test_every_fixture_names_its_source_versions() -> None:
    for name in ALL_FIXTURES:
        source = _load(name)["source"]
        assert source["versions"], name
        assert spans(name), name


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_llm_spans_have_model_provider_and_inclusive_usage(name: str) -> None:
    checked = 0
    for span, attrs in normalized(name):
        if g.USAGE_OUTPUT_TOKENS not in attrs:
            continue
        provider = attrs.get(g.PROVIDER_NAME)
        if name == "mlflow_genai_semconv" and provider is None:
            continue  # MLflow's own GenAI export leaves the OpenAI provider out
        expected = USAGE[str(provider)]
        assert attrs[g.USAGE_OUTPUT_TOKENS] == expected["output"], span["name"]
        if name == "mlflow_genai_semconv":  # that export drops cache counts, sums them in
            assert attrs[g.USAGE_INPUT_TOKENS] == expected["input"], span["name"]
        elif g.USAGE_CACHE_READ_INPUT_TOKENS in attrs:
            assert attrs[g.USAGE_INPUT_TOKENS] == expected["input"], span["name"]
            read = attrs[g.USAGE_CACHE_READ_INPUT_TOKENS]
            assert read == expected["cache_read"], span["name"]
            if provider != "openai":
                assert attrs[g.USAGE_CACHE_CREATION_INPUT_TOKENS] == 20
        elif provider == "openai":
            # openai-v2 records no cache counts; OpenAI's prompt_tokens already include them
            assert attrs[g.USAGE_INPUT_TOKENS] == expected["input"], span["name"]
        else:
            # OpenLLMetry's Bedrock instrumentation (InvokeModel; everything in <= 0.46)
            # drops the cache counts: the uncached count is all there is.
            assert provider == "aws.bedrock" and name.startswith("openllmetry"), span["name"]
            assert attrs[g.USAGE_INPUT_TOKENS] == CLAUDE_UNCACHED_INPUT
        assert attrs.get(g.REQUEST_MODEL) or attrs.get(g.RESPONSE_MODEL)
        checked += 1
    assert checked >= 2, f"{name}: no LLM span checked"


@pytest.mark.parametrize("name", ["openinference", "openllmetry", "openllmetry_legacy", "mlflow"])
def test_chat_messages_are_in_the_parts_schema(name: str) -> None:
    """Every chat span: the first answer is one get_weather call, the second the final
    text; calls without tools (streamed OpenAI, Bedrock) answer the final text."""
    tool_call_answers = text_answers = plain = 0
    for _span, attrs in normalized(name):
        if attrs.get(g.OPERATION_NAME) != "chat" or g.OUTPUT_MESSAGES not in attrs:
            continue
        inputs = messages(attrs, g.INPUT_MESSAGES)
        outputs = messages(attrs, g.OUTPUT_MESSAGES)
        assert any(p["content"] == "Weather in Paris?" for p in parts_of(inputs, "text"))
        if g.TOOL_DEFINITIONS not in attrs:
            assert [p["content"] for p in parts_of(outputs, "text")] == [FINAL_TEXT]
            assert outputs[-1]["finish_reason"] == "stop"
            plain += 1
            continue
        calls = parts_of(outputs, "tool_call")
        if calls:
            assert len(calls) == 1  # OpenInference echoes Anthropic tool_use twice: merged
            assert calls[0]["name"] == "get_weather"
            assert calls[0]["arguments"] == {"city": "Paris"}
            assert outputs[-1]["finish_reason"] == "tool_call"
            tool_call_answers += 1
        else:
            assert [p["content"] for p in parts_of(outputs, "text")] == [FINAL_TEXT]
            assert outputs[-1]["finish_reason"] == "stop"
            # the second request carried the tool call and its result back
            assert parts_of(inputs, "tool_call")[0]["name"] == "get_weather"
            responses = parts_of(inputs, "tool_call_response")
            assert responses and responses[0]["id"] in {"call_1", "toolu_1"}
            text_answers += 1
        tools = json.loads(attrs[g.TOOL_DEFINITIONS])
        assert tools[0]["name"] == "get_weather"
    assert tool_call_answers >= 1 and text_answers >= 1
    assert plain >= 1


@pytest.mark.parametrize(
    ("name", "expected_types"),
    [
        ("openinference", {"CHAT_MODEL": 7, "EMBEDDING": 1}),
        ("openllmetry_legacy", {"CHAT_MODEL": 7, "EMBEDDING": 1}),
        ("openllmetry", {"CHAIN": 2}),
        ("mlflow", {"CHAT_MODEL": 6, "LLM": 1, "EMBEDDING": 1, "AGENT": 1}),
    ],
)
def test_span_types(name: str, expected_types: dict[str, int]) -> None:
    counts: dict[str, int] = {}
    for _span, attrs in normalized(name):
        if s.SPAN_TYPE in attrs:
            counts[attrs[s.SPAN_TYPE]] = counts.get(attrs[s.SPAN_TYPE], 0) + 1
    assert counts == expected_types


def test_openinference_inputs_outputs_and_trace_fields() -> None:
    chats = [a for sp, a in normalized("openinference") if sp["name"] == "ChatCompletion"]
    assert len(chats) == 3
    for attrs in chats:
        assert json.loads(attrs[s.SPAN_INPUTS])["model"] == "gpt-4o-mini"
        assert json.loads(attrs[s.SPAN_OUTPUTS])["id"].startswith("chatcmpl-")
        assert attrs[g.REQUEST_MODEL] == "gpt-4o-mini"  # from llm.invocation_parameters
        assert attrs[g.RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
        assert attrs[g.USAGE_REASONING_OUTPUT_TOKENS] == 4
        if attrs.get(g.REQUEST_STREAM):
            continue  # the streamed call set no sampling parameters
        assert attrs[g.REQUEST_TEMPERATURE] == 0.2
        assert attrs[g.REQUEST_MAX_TOKENS] == 100
        assert attrs[s.TRACE_METADATA_PREFIX + "env"] == "test"
        assert attrs[s.TRACE_METADATA_PREFIX + "version"] == "3"
        assert attrs[s.TRACE_TAG_PREFIX + "weather"] == "true"
        assert attrs[s.TRACE_TAG_PREFIX + "demo"] == "true"
        assert attrs[s.USER_ID] == "user-1" and attrs[s.SESSION_ID] == "sess-1"
    anthropic = [a for sp, a in normalized("openinference") if sp["name"] == "messages.create"]
    assert [a[g.PROVIDER_NAME] for a in anthropic] == ["anthropic", "anthropic"]
    assert all(a[g.REQUEST_MODEL] == "claude-sonnet-4-5" for a in anthropic)


def test_openllmetry_legacy_reads_flattened_prompts_and_capitalised_system() -> None:
    by_name = [(sp["name"], a) for sp, a in normalized("openllmetry_legacy")]
    anthropic = [a for n, a in by_name if n == "anthropic.chat"]
    assert anthropic and all(a[g.PROVIDER_NAME] == "anthropic" for a in anthropic)
    assert all(a[g.SYSTEM] == "Anthropic" for a in anthropic)  # original kept
    second = messages(anthropic[1], g.INPUT_MESSAGES)
    # Anthropic tool results arrive as a JSON list of content blocks in .content
    assert parts_of(second, "tool_call_response") == [
        {"type": "tool_call_response", "id": "toolu_1", "response": "sunny"}
    ]
    tools = json.loads(anthropic[0][g.TOOL_DEFINITIONS])
    assert tools[0]["parameters"]["required"] == ["city"]  # from .input_schema
    openai_chat = [a for n, a in by_name if n == "openai.chat"]
    # (0.46 does not report reasoning tokens for streamed calls)
    assert [a.get(g.USAGE_REASONING_OUTPUT_TOKENS) for a in openai_chat] == [4, 4, None]
    assert [a[g.REQUEST_STREAM] for a in openai_chat] == [False, False, True]


def test_openllmetry_workflow_spans_and_association_properties() -> None:
    rows = normalized("openllmetry")
    workflow = next(a for sp, a in rows if sp["name"] == "weather_flow.workflow")
    assert json.loads(workflow[s.SPAN_INPUTS]) == {"args": ["Weather in Paris?"], "kwargs": {}}
    assert json.loads(workflow[s.SPAN_OUTPUTS]) == FINAL_TEXT
    task = next(a for sp, a in rows if sp["name"] == "lookup.task")
    assert json.loads(task[s.SPAN_OUTPUTS]) == "sunny in Paris"
    for _span, attrs in rows:
        assert attrs[s.USER_ID] == "user-1"
        assert attrs[s.SESSION_ID] == "sess-1"
        # standard ids are not duplicated as free-form metadata
        assert s.TRACE_METADATA_PREFIX + "user_id" not in attrs


def test_mlflow_decodes_json_encoded_values() -> None:
    rows = normalized("mlflow")
    agent = next(a for sp, a in rows if sp["name"] == "agent")
    assert agent[s.SPAN_TYPE] == "AGENT"
    assert json.loads(agent[s.SPAN_INPUTS]) == {"question": "Weather in Paris?"}
    assert json.loads(agent[s.SPAN_OUTPUTS]) == FINAL_TEXT
    assert agent["mlflow.spanType"] == "AGENT"  # decoded in place, was '"AGENT"'
    chat = next(a for sp, a in rows if sp["name"] == "Completions")
    assert chat["model"] == "gpt-4o-mini" and chat["temperature"] == 0.2
    assert chat[g.REQUEST_MODEL] == "gpt-4o-mini"
    assert chat[g.RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
    assert chat[g.REQUEST_TEMPERATURE] == 0.2 and chat[g.REQUEST_MAX_TOKENS] == 100
    trace_id = chat[s.TRACE_METADATA_PREFIX + "mlflow.trace_id"]
    assert trace_id.startswith("tr-")
    anthropic = next(a for sp, a in rows if sp["name"] == "Messages.create")
    system = json.loads(anthropic[g.SYSTEM_INSTRUCTIONS])
    assert system == [{"type": "text", "content": "You are a weather bot."}]


@pytest.mark.parametrize("name", ["mlflow_genai_semconv", "otel_genai"])
def test_current_otel_spans_pass_through(name: str) -> None:
    for span, attrs in normalized(name):
        original = span["attributes"]
        assert {k: attrs[k] for k in original} == original
        added = set(attrs) - set(original)
        # only the newer cache_write name gains its v1.41 spelling
        assert added <= {g.USAGE_CACHE_CREATION_INPUT_TOKENS}
        if g.USAGE_CACHE_WRITE_INPUT_TOKENS in original:
            assert attrs[g.USAGE_CACHE_CREATION_INPUT_TOKENS] == 20


def test_bedrock_spans() -> None:
    """Claude through Bedrock: provider aws.bedrock, Converse content blocks as parts."""
    for name in ("openinference", "openllmetry_legacy"):
        bedrock = [a for sp, a in normalized(name) if sp["name"].startswith("bedrock.")]
        assert len(bedrock) == 2, name
        for attrs in bedrock:
            assert attrs[g.PROVIDER_NAME] == "aws.bedrock"
            assert "claude" in attrs[g.REQUEST_MODEL]
            sent = messages(attrs, g.INPUT_MESSAGES)
            # Converse blocks ([{"text": ...}]) and JSON-string content both become text
            assert parts_of(sent, "text")[-1] == {"type": "text", "content": "Weather in Paris?"}
            answer = messages(attrs, g.OUTPUT_MESSAGES)
            assert parts_of(answer, "text") == [{"type": "text", "content": FINAL_TEXT}]
    modern = [a for sp, a in normalized("openllmetry") if a.get(g.PROVIDER_NAME) == "aws.bedrock"]
    converse = [a for a in modern if g.USAGE_CACHE_READ_INPUT_TOKENS in a]
    # reported as input_tokens=12 beside 120 cache tokens: provably exclusive, fixed
    assert [a[g.USAGE_INPUT_TOKENS] for a in converse] == [132]


def test_detect_names_the_dialects() -> None:
    assert {d for sp in spans("openinference") for d in detect(sp["attributes"])} == {
        "openinference",
        "otel_genai",  # the Anthropic SDK's own span carries cache_write
    }
    assert detect(spans("mlflow")[0]["attributes"]) == ["mlflow"]
    assert "openllmetry" in detect(spans("openllmetry_legacy")[0]["attributes"])
    assert all(not detect(sp["attributes"]) for sp in spans("mlflow_genai_semconv"))


# --- through the lead's mapping (span -> SpanRecord) -------------------------------------
def _records(name: str) -> list[Any]:
    mapping = pytest.importorskip("spanlake.exporter.mapping")
    out = []
    for i, span in enumerate(spans(name)):
        parent = span["parent"]
        span_input = mapping.SpanInput(
            trace_id="ab" * 16,
            span_id=f"{i + 1:016x}",
            parent_span_id=f"{parent + 1:016x}" if parent is not None else None,
            name=span["name"],
            kind=span["kind"],
            start_time_ns=1_000 + i,
            end_time_ns=2_000 + i,
            status_code=span["status"],
            attributes=span["attributes"],
            scope=span["scope"],
        )
        out.append(mapping.map_span(span_input, "default"))
    return out


@pytest.mark.parametrize("name", ["openinference", "openllmetry", "openllmetry_legacy", "mlflow"])
def test_fixtures_through_the_mapping(name: str) -> None:
    llm = [r for r in _records(name) if r.span_type == "CHAT_MODEL" and r.token_usage]
    assert len(llm) >= 4
    for record in llm:
        usage = record.token_usage
        if record.provider in ("anthropic", "aws.bedrock"):
            if usage.cache_read_input_tokens == 0:  # instrumentation dropped the cache counts
                assert record.provider == "aws.bedrock" and name.startswith("openllmetry")
                assert (usage.input_tokens, usage.output_tokens) == (12, 7)
                continue
            assert (usage.input_tokens, usage.output_tokens) == (132, 7)
            assert usage.cache_read_input_tokens == 100
            assert usage.cache_creation_input_tokens == 20
        else:
            assert record.provider == "openai"
            assert (usage.input_tokens, usage.output_tokens) == (50, 10)
            assert usage.cache_read_input_tokens == 20
        assert usage.total_tokens == usage.input_tokens + usage.output_tokens
        assert record.model
        assert record.model.startswith(("gpt-4o-mini", "claude", "anthropic.claude"))
        if record.scope == "com.anthropic.sdk.python":
            continue  # the Anthropic SDK's own spans record no content
        assert record.inputs is not None and json.loads(record.inputs)
        assert record.outputs is not None and json.loads(record.outputs)


def test_mapping_carries_trace_fields_from_dialects() -> None:
    records = _records("openinference")
    chat = next(r for r in records if r.name == "ChatCompletion")
    assert chat.trace_tags == {"weather": "true", "demo": "true"}
    assert chat.trace_metadata["env"] == "test"
    assert chat.trace_metadata["user"] == "user-1"
    assert chat.trace_metadata["session"] == "sess-1"
    workflow = next(r for r in _records("openllmetry") if r.name == "weather_flow.workflow")
    assert workflow.span_type == "CHAIN"
    assert workflow.trace_metadata["user"] == "user-1"
