"""OTel GenAI semantic-convention attribute keys and value enums.

The floor is semconv v1.41; names that only exist in the newer, unreleased conventions are
grouped at the bottom and emitted only when
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` (see :func:`latest_experimental`).
"""

from __future__ import annotations

import os
from typing import Final

# --- operation / provider -------------------------------------------------------------
OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
SYSTEM: Final = "gen_ai.system"  # deprecated: read, never emitted
CONVERSATION_ID: Final = "gen_ai.conversation.id"
OUTPUT_TYPE: Final = "gen_ai.output.type"

# --- request ----------------------------------------------------------------------------
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_STREAM: Final = "gen_ai.request.stream"
REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
REQUEST_TOP_P: Final = "gen_ai.request.top_p"
REQUEST_TOP_K: Final = "gen_ai.request.top_k"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
REQUEST_SEED: Final = "gen_ai.request.seed"
REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
REQUEST_ENCODING_FORMATS: Final = "gen_ai.request.encoding_formats"

# --- response ---------------------------------------------------------------------------
RESPONSE_ID: Final = "gen_ai.response.id"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"

# --- usage ------------------------------------------------------------------------------
# input_tokens INCLUDES cached tokens for every provider (Anthropic reports them apart;
# instrumentations add cache_read + cache_creation back in).
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"

# --- content (JSON strings in the OTel message-parts schema) -------------------------
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"

# --- agents, tools, embeddings, retrieval ------------------------------------------------
AGENT_ID: Final = "gen_ai.agent.id"
AGENT_NAME: Final = "gen_ai.agent.name"
AGENT_DESCRIPTION: Final = "gen_ai.agent.description"
TOOL_NAME: Final = "gen_ai.tool.name"
TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
TOOL_TYPE: Final = "gen_ai.tool.type"
TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"
DATA_SOURCE_ID: Final = "gen_ai.data_source.id"

# --- general OTel keys the GenAI conventions reuse --------------------------------------
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"

# --- events -------------------------------------------------------------------------------
EVENT_CLIENT_INFERENCE_OPERATION_DETAILS: Final = "gen_ai.client.inference.operation.details"

# --- client metrics (semconv v1.41: all four exist there, so no opt-in gate) ---------------
METRIC_CLIENT_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_CLIENT_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_CLIENT_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
METRIC_CLIENT_TIME_PER_OUTPUT_CHUNK: Final = "gen_ai.client.operation.time_per_output_chunk"
TOKEN_TYPE: Final = "gen_ai.token.type"
TOKEN_TYPE_INPUT: Final = "input"
TOKEN_TYPE_OUTPUT: Final = "output"
#: The conventions' advisory histogram buckets.
TOKEN_USAGE_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
CHUNK_GAP_BUCKETS: Final = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip

# --- newer experimental names (behind the opt-in switch) ---------------------------------
USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"


class Operation:
    """Values of ``gen_ai.operation.name``."""

    CHAT: Final = "chat"
    TEXT_COMPLETION: Final = "text_completion"
    GENERATE_CONTENT: Final = "generate_content"
    EMBEDDINGS: Final = "embeddings"
    CREATE_AGENT: Final = "create_agent"
    INVOKE_AGENT: Final = "invoke_agent"
    EXECUTE_TOOL: Final = "execute_tool"
    RETRIEVAL: Final = "retrieval"


class Provider:
    """Values of ``gen_ai.provider.name`` (Claude through Bedrock is ``aws.bedrock``)."""

    ANTHROPIC: Final = "anthropic"
    AWS_BEDROCK: Final = "aws.bedrock"
    OPENAI: Final = "openai"
    AZURE_AI_OPENAI: Final = "azure.ai.openai"
    GCP_VERTEX_AI: Final = "gcp.vertex_ai"
    GCP_GEMINI: Final = "gcp.gemini"
    COHERE: Final = "cohere"
    MISTRAL_AI: Final = "mistral_ai"


class CaptureMode:
    """Values of ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``."""

    NO_CONTENT: Final = "NO_CONTENT"
    SPAN_ONLY: Final = "SPAN_ONLY"
    EVENT_ONLY: Final = "EVENT_ONLY"
    SPAN_AND_EVENT: Final = "SPAN_AND_EVENT"


ENV_CAPTURE_MESSAGE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENV_SEMCONV_STABILITY_OPT_IN: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
OPT_IN_LATEST_EXPERIMENTAL: Final = "gen_ai_latest_experimental"

#: Every usage key the mapping reads, newest names included.
USAGE_KEYS: Final = (
    USAGE_INPUT_TOKENS,
    USAGE_OUTPUT_TOKENS,
    USAGE_CACHE_READ_INPUT_TOKENS,
    USAGE_CACHE_CREATION_INPUT_TOKENS,
    USAGE_CACHE_WRITE_INPUT_TOKENS,
    USAGE_REASONING_OUTPUT_TOKENS,
)


def latest_experimental() -> bool:
    """True when the user opted into the newer, unreleased GenAI names."""
    raw = os.environ.get(ENV_SEMCONV_STABILITY_OPT_IN, "")
    return OPT_IN_LATEST_EXPERIMENTAL in {part.strip() for part in raw.split(",")}
