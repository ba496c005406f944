"""Row-by-row checks of the dialect tables, precedence rules, and a fuzz test."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spanlake.semconv import gen_ai as g
from spanlake.semconv import spanlake_attrs as s
from spanlake.semconv.dialects import DIALECTS, detect, normalize
from spanlake.semconv.dialects._table import apply
from spanlake.semconv.dialects._values import provider
from spanlake.semconv.dialects.mlflow import DECODED_KEYS

# (input attributes, expected subset of the output)
ROWS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # --- OpenInference ---------------------------------------------------------------
    *[
        (f"oi-kind-{kind}", {"openinference.span.kind": kind}, {s.SPAN_TYPE: kind})
        for kind in (
            "CHAIN",
            "TOOL",
            "AGENT",
            "RETRIEVER",
            "EMBEDDING",
            "RERANKER",
            "GUARDRAIL",
            "EVALUATOR",
        )
    ],
    ("oi-kind-llm", {"openinference.span.kind": "LLM"}, {s.SPAN_TYPE: "LLM"}),
    (
        "oi-llm-with-messages-is-chat",
        {"openinference.span.kind": "LLM", "llm.input_messages.0.message.role": "user"},
        {s.SPAN_TYPE: "CHAT_MODEL", g.OPERATION_NAME: "chat"},
    ),
    ("oi-kind-unknown-value", {"openinference.span.kind": "NOPE"}, {}),
    (
        "oi-plain-text-input",
        {"input.value": "hi there", "input.mime_type": "text/plain"},
        {s.SPAN_INPUTS: '"hi there"'},
    ),
    (
        "oi-plain-text-that-looks-like-json",
        {"input.value": "42", "input.mime_type": "text/plain"},
        {s.SPAN_INPUTS: '"42"'},
    ),
    ("oi-json-input-verbatim", {"input.value": '{"a": 1}'}, {s.SPAN_INPUTS: '{"a": 1}'}),
    ("oi-no-mime-plain-text", {"output.value": "done"}, {s.SPAN_OUTPUTS: '"done"'}),
    (
        "oi-model",
        {"llm.model_name": "gpt-x"},
        {g.RESPONSE_MODEL: "gpt-x", g.REQUEST_MODEL: "gpt-x"},
    ),
    (
        "oi-provider-beats-system",
        {"llm.provider": "aws", "llm.system": "anthropic"},
        {g.PROVIDER_NAME: "aws.bedrock"},
    ),
    ("oi-system", {"llm.system": "mistralai"}, {g.PROVIDER_NAME: "mistral_ai"}),
    (
        "oi-tokens",
        {
            "llm.token_count.prompt": 30,
            "llm.token_count.completion": 5,
            "llm.token_count.prompt_details.cache_read": 10,
            "llm.token_count.prompt_details.cache_write": 4,
            "llm.token_count.completion_details.reasoning": 2,
        },
        {
            g.USAGE_INPUT_TOKENS: 30,
            g.USAGE_OUTPUT_TOKENS: 5,
            g.USAGE_CACHE_READ_INPUT_TOKENS: 10,
            g.USAGE_CACHE_CREATION_INPUT_TOKENS: 4,
            g.USAGE_REASONING_OUTPUT_TOKENS: 2,
        },
    ),
    (
        "oi-invocation-parameters",
        {
            "llm.invocation_parameters": json.dumps(
                {
                    "temperature": 0.5,
                    "max_completion_tokens": 64,
                    "top_p": 0.9,
                    "stop": ["\n"],
                    "seed": 7,
                    "n": 2,
                    "stream": True,
                    "frequency_penalty": 0.1,
                    "presence_penalty": 0.2,
                }
            )
        },
        {
            g.REQUEST_TEMPERATURE: 0.5,
            g.REQUEST_MAX_TOKENS: 64,
            g.REQUEST_TOP_P: 0.9,
            g.REQUEST_STOP_SEQUENCES: ["\n"],
            g.REQUEST_SEED: 7,
            g.REQUEST_CHOICE_COUNT: 2,
            g.REQUEST_STREAM: True,
            g.REQUEST_FREQUENCY_PENALTY: 0.1,
            g.REQUEST_PRESENCE_PENALTY: 0.2,
        },
    ),
    (
        "oi-metadata-and-tags",
        {"metadata": '{"env": "prod", "n": 1}', "tag.tags": ["a", "b"]},
        {
            s.TRACE_METADATA_PREFIX + "env": "prod",
            s.TRACE_METADATA_PREFIX + "n": "1",
            s.TRACE_TAG_PREFIX + "a": "true",
            s.TRACE_TAG_PREFIX + "b": "true",
        },
    ),
    (
        "oi-tool-span",
        {
            "openinference.span.kind": "TOOL",
            "tool.name": "f",
            "tool.id": "call_9",
            "tool.parameters": '{"type": "object"}',
            "input.value": '{"city": "Paris"}',
        },
        {
            s.SPAN_TYPE: "TOOL",
            g.TOOL_NAME: "f",
            g.TOOL_CALL_ID: "call_9",
            g.TOOL_CALL_ARGUMENTS: None,  # the schema is not the arguments
            s.SPAN_INPUTS: '{"city": "Paris"}',
        },
    ),
    # --- OpenLLMetry ----------------------------------------------------------------
    (
        "ol-request-chat",
        {"llm.request.type": "chat"},
        {s.SPAN_TYPE: "CHAT_MODEL", g.OPERATION_NAME: "chat"},
    ),
    (
        "ol-request-completion",
        {"llm.request.type": "completion"},
        {s.SPAN_TYPE: "LLM", g.OPERATION_NAME: "text_completion"},
    ),
    (
        "ol-request-embedding",
        {"llm.request.type": "embedding"},
        {s.SPAN_TYPE: "EMBEDDING", g.OPERATION_NAME: "embeddings"},
    ),
    *[
        (f"ol-kind-{kind}", {"traceloop.span.kind": kind}, {s.SPAN_TYPE: expected})
        for kind, expected in (
            ("workflow", "CHAIN"),
            ("task", "CHAIN"),
            ("agent", "AGENT"),
            ("tool", "TOOL"),
        )
    ],
    (
        "ol-entity-io",
        {"traceloop.entity.input": '{"x": 1}', "traceloop.entity.output": "plain"},
        {s.SPAN_INPUTS: '{"x": 1}', s.SPAN_OUTPUTS: '"plain"'},
    ),
    (
        "ol-association",
        {
            "traceloop.workflow.name": "w",
            "traceloop.association.properties.tenant": "t1",
            "traceloop.association.properties.user_id": "u",
        },
        {s.TRACE_METADATA_PREFIX + "tenant": "t1", s.USER_ID: "u"},
    ),
    *[
        (f"ol-system-{raw}", {g.SYSTEM: raw}, {g.PROVIDER_NAME: expected})
        for raw, expected in (
            ("Anthropic", "anthropic"),
            ("OpenAI", "openai"),
            ("AWS", "aws.bedrock"),
            ("Bedrock", "aws.bedrock"),
            ("az.ai.openai", "azure.ai.openai"),
        )
    ],
    (
        "ol-legacy-usage",
        {
            "gen_ai.usage.prompt_tokens": 9,
            "gen_ai.usage.completion_tokens": 3,
            "gen_ai.usage.cache_read_input_tokens": 4,
            "gen_ai.usage.cache_creation_input_tokens": 1,
            "llm.usage.reasoning_tokens": 2,
        },
        {
            g.USAGE_INPUT_TOKENS: 9,
            g.USAGE_OUTPUT_TOKENS: 3,
            g.USAGE_CACHE_READ_INPUT_TOKENS: 4,
            g.USAGE_CACHE_CREATION_INPUT_TOKENS: 1,
            g.USAGE_REASONING_OUTPUT_TOKENS: 2,
        },
    ),
    (
        "ol-anthropic-exclusive-input-by-total",
        {
            g.SYSTEM: "Anthropic",
            "gen_ai.usage.prompt_tokens": 12,
            "gen_ai.usage.completion_tokens": 7,
            "gen_ai.usage.cache_read_input_tokens": 100,
            "gen_ai.usage.cache_creation_input_tokens": 20,
            "llm.usage.total_tokens": 139,
        },
        {g.USAGE_INPUT_TOKENS: 132},
    ),
    (
        "ol-anthropic-exclusive-input-no-total",
        {
            g.SYSTEM: "Anthropic",
            "gen_ai.usage.prompt_tokens": 12,
            "gen_ai.usage.cache_read_input_tokens": 100,
        },
        {g.USAGE_INPUT_TOKENS: 112},
    ),
    (
        "ol-anthropic-inclusive-input-untouched",
        {
            g.SYSTEM: "Anthropic",
            "gen_ai.usage.prompt_tokens": 132,
            "gen_ai.usage.completion_tokens": 7,
            "gen_ai.usage.cache_read_input_tokens": 100,
            "gen_ai.usage.cache_creation_input_tokens": 20,
            "llm.usage.total_tokens": 139,
        },
        {g.USAGE_INPUT_TOKENS: 132},
    ),
    (
        "otel-cache-write",
        {g.USAGE_CACHE_WRITE_INPUT_TOKENS: 8},
        {g.USAGE_CACHE_CREATION_INPUT_TOKENS: 8},
    ),
    # --- input-token inclusivity, for every span, dialect or not -------------------------
    (
        "usage-inclusive-kept",
        {g.USAGE_INPUT_TOKENS: 50, g.USAGE_CACHE_READ_INPUT_TOKENS: 20},
        {g.USAGE_INPUT_TOKENS: 50},
    ),
    (
        "usage-smaller-than-cache-is-exclusive",
        {
            g.PROVIDER_NAME: "aws.bedrock",
            g.USAGE_INPUT_TOKENS: 5,
            g.USAGE_CACHE_READ_INPUT_TOKENS: 50,
            g.USAGE_CACHE_WRITE_INPUT_TOKENS: 1,
        },
        {g.USAGE_INPUT_TOKENS: 56},
    ),
    (
        "usage-total-reveals-exclusive",
        {
            g.USAGE_INPUT_TOKENS: 500,
            g.USAGE_OUTPUT_TOKENS: 10,
            g.USAGE_CACHE_READ_INPUT_TOKENS: 100,
            "gen_ai.usage.total_tokens": 610,
        },
        {g.USAGE_INPUT_TOKENS: 600},
    ),
    (
        "usage-ambiguous-left-alone",
        {g.USAGE_INPUT_TOKENS: 500, g.USAGE_CACHE_READ_INPUT_TOKENS: 100},
        {g.USAGE_INPUT_TOKENS: 500},
    ),
    # --- MLflow -----------------------------------------------------------------------
    ("ml-span-type", {"mlflow.spanType": '"RETRIEVER"'}, {s.SPAN_TYPE: "RETRIEVER"}),
    ("ml-span-type-unknown", {"mlflow.spanType": '"WHATEVER"'}, {}),
    (
        "ml-inputs-outputs-verbatim",
        {"mlflow.spanInputs": '{"q": 1}', "mlflow.spanOutputs": '"a"'},
        {s.SPAN_INPUTS: '{"q": 1}', s.SPAN_OUTPUTS: '"a"'},
    ),
    (
        "ml-token-usage",
        {"mlflow.chat.tokenUsage": '{"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}'},
        {g.USAGE_INPUT_TOKENS: 3, g.USAGE_OUTPUT_TOKENS: 2},
    ),
    (
        "ml-decoded-params",
        {"mlflow.spanType": '"LLM"', "model": '"m1"', "temperature": "0.3", "max_tokens": "9"},
        {
            "model": "m1",
            g.REQUEST_MODEL: "m1",
            g.REQUEST_TEMPERATURE: 0.3,
            g.REQUEST_MAX_TOKENS: 9,
        },
    ),
    (
        "ml-llm-model-and-provider",
        {
            "mlflow.spanType": '"CHAT_MODEL"',
            "mlflow.llm.model": '"c"',
            "mlflow.llm.provider": '"bedrock"',
        },
        {g.REQUEST_MODEL: "c", g.PROVIDER_NAME: "aws.bedrock", g.OPERATION_NAME: "chat"},
    ),
    (
        "ml-chat-messages-and-tools",
        {
            "mlflow.spanType": '"CHAT_MODEL"',
            "mlflow.chat.messages": json.dumps(
                [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello", "finish_reason": "stop"},
                ]
            ),
            "mlflow.chat.tools": json.dumps(
                [{"type": "function", "function": {"name": "f", "parameters": {}}}]
            ),
        },
        {
            g.INPUT_MESSAGES: '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]',
            g.OUTPUT_MESSAGES: '[{"role":"assistant","parts":[{"type":"text","content":"hello"}],'
            '"finish_reason":"stop"}]',
            g.TOOL_DEFINITIONS: '[{"type":"function","name":"f","parameters":{}}]',
        },
    ),
    (
        "ml-trace-id-metadata",
        {"mlflow.traceRequestId": '"tr-1"'},
        {s.TRACE_METADATA_PREFIX + "mlflow.trace_id": "tr-1"},
    ),
]


@pytest.mark.parametrize(("attrs", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_table_row(attrs: dict[str, Any], expected: dict[str, Any]) -> None:
    out = normalize(attrs)
    assert {k: out.get(k) for k in expected} == expected
    if not expected:  # an unusable value adds nothing
        assert set(out) == set(attrs)


def test_every_dialect_has_markers_and_rows() -> None:
    names = {d.name for d in DIALECTS}
    assert names == {"openinference", "openllmetry", "mlflow", "otel_genai"}
    prefixes = {"oi": "openinference", "ol": "openllmetry", "ml": "mlflow", "otel": "otel_genai"}
    covered = {prefixes[p] for row in ROWS if (p := row[0].split("-")[0]) in prefixes}
    assert covered == names


def test_existing_otel_keys_win() -> None:
    out = normalize(
        {
            "llm.model_name": "theirs",
            g.REQUEST_MODEL: "ours",
            "openinference.span.kind": "AGENT",
            s.SPAN_TYPE: "TOOL",
            "llm.token_count.prompt": 99,
            g.USAGE_INPUT_TOKENS: 1,
        }
    )
    assert out[g.REQUEST_MODEL] == "ours"
    assert out[s.SPAN_TYPE] == "TOOL"
    assert out[g.USAGE_INPUT_TOKENS] == 1
    assert out["llm.model_name"] == "theirs"  # originals kept


def test_originals_are_kept_and_input_is_not_mutated() -> None:
    attrs = {"openinference.span.kind": "LLM", "input.value": "x", "custom": 1}
    snapshot = dict(attrs)
    out = normalize(attrs)
    assert attrs == snapshot
    assert out is not attrs
    assert {k: out[k] for k in attrs} == attrs


def test_plain_and_current_spans_take_the_fast_path() -> None:
    plain = {"http.method": "GET", "service.name": "x"}
    current = {g.PROVIDER_NAME: "openai", g.USAGE_INPUT_TOKENS: 3, g.REQUEST_MODEL: "m"}
    for attrs in (plain, current, {}):
        out = normalize(attrs)
        assert out == attrs and out is not attrs
        assert detect(attrs) == []


def test_flattened_messages_keep_index_order_past_nine() -> None:
    attrs = {}
    for i in range(12):
        attrs[f"gen_ai.prompt.{i}.role"] = "user"
        attrs[f"gen_ai.prompt.{i}.content"] = f"m{i}"
    out = normalize(attrs)
    msgs = json.loads(out[g.INPUT_MESSAGES])
    assert [m["parts"][0]["content"] for m in msgs] == [f"m{i}" for i in range(12)]


def test_openinference_image_and_text_contents() -> None:
    out = normalize(
        {
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.contents.0.message_content.type": "text",
            "llm.input_messages.0.message.contents.0.message_content.text": "what is this?",
            "llm.input_messages.0.message.contents.1.message_content.type": "image",
            "llm.input_messages.0.message.contents.1.message_content.image.image.url": "https://x/y.png",
        }
    )
    (msg,) = json.loads(out[g.INPUT_MESSAGES])
    assert msg["parts"] == [
        {"type": "text", "content": "what is this?"},
        {"type": "uri", "modality": "image", "uri": "https://x/y.png"},
    ]


def test_text_that_merely_looks_like_json_blocks_stays_text() -> None:
    out = normalize({"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "[1, 2]"})
    assert json.loads(out[g.INPUT_MESSAGES])[0]["parts"] == [{"type": "text", "content": "[1, 2]"}]


def test_provider_unknown_passes_through_lowercased() -> None:
    assert provider("SomeNewLab") == "somenewlab"
    assert provider("") is None and provider(3) is None


# --- fuzz ---------------------------------------------------------------------------------
_MARKERS = sorted(
    set().union(*(d.markers for d in DIALECTS))
    | {*g.USAGE_KEYS, "gen_ai.usage.total_tokens", "llm.usage.total_tokens"}
)
_PREFIXES = [
    "llm.input_messages.",
    "llm.output_messages.",
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.tools.",
    "llm.request.functions.",
    "traceloop.association.properties.",
]
_SUFFIXES = [
    "message.role",
    "message.content",
    "message.tool_calls.0.tool_call.function.name",
    "message.contents.0.message_content.type",
    "role",
    "content",
    "tool_calls.0.name",
    "tool.json_schema",
    "name",
    "x",
]
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        ['{"a": [1, {"b": null}]}', "[{}]", '[{"type": 3}]', '"x"', "null", "{", "1e999"]
    ),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=5), inner, max_size=3),
    ),
    max_leaves=8,
)
_keys = st.one_of(
    st.sampled_from(_MARKERS),
    st.builds(
        lambda p, i, sfx: f"{p}{i}.{sfx}",
        st.sampled_from(_PREFIXES),
        st.sampled_from(["0", "1", "10", "-1", "x", "999999999"]),
        st.sampled_from(_SUFFIXES),
    ),
    st.text(max_size=20),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=12))
def test_normalize_never_raises(attrs: dict[str, Any]) -> None:
    # each table on its own, without normalize's last-resort guard, must not raise either
    for dialect in DIALECTS:
        apply(dialect, dict(attrs), dict(attrs))
    out = normalize(attrs)
    for key, value in attrs.items():
        # only MLflow's JSON-encoded scalars and provably exclusive input counts change
        if key not in DECODED_KEYS and key != g.USAGE_INPUT_TOKENS:
            assert out[key] is value or out[key] == value or value != value


def test_public_surface() -> None:
    import spanlake.semconv.dialects as dialects

    assert sorted(dialects.__all__) == [
        "DIALECTS",
        "Dialect",
        "PrefixRename",
        "Rename",
        "detect",
        "normalize",
    ]
    assert all(hasattr(dialects, name) for name in dialects.__all__)
