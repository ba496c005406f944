"""OTel GenAI names other than the v1.41 ones we read directly: the deprecated
``gen_ai.system`` and pre-1.27 ``gen_ai.usage.prompt_tokens``/``completion_tokens``, the
newer ``cache_write`` name, and OpenLLMetry's underscore cache names.

Per-modality usage names are not in any released convention yet; nothing to map.

Token inclusivity: every name mapped here onto ``gen_ai.usage.input_tokens`` already
counts cached tokens for OpenAI. For Anthropic, the raw API's ``input_tokens`` excludes
cache reads and writes; an instrumentation that copies it verbatim shows up as
``input < cache_read + cache_creation`` or as a total that only adds up with the cache
counts, and :func:`_inclusive_input` adds them back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from spanlake.semconv import gen_ai as g
from spanlake.semconv.dialects._table import Dialect, Rename
from spanlake.semconv.dialects._values import as_int, provider

LEGACY_INPUT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
LEGACY_OUTPUT_TOKENS: Final = "gen_ai.usage.completion_tokens"
LEGACY_CACHE_READ: Final = "gen_ai.usage.cache_read_input_tokens"
LEGACY_CACHE_CREATION: Final = "gen_ai.usage.cache_creation_input_tokens"
TOTAL_TOKENS_KEYS: Final = ("llm.usage.total_tokens", "gen_ai.usage.total_tokens")


def _inclusive_input(src: Mapping[str, Any], out: dict[str, Any]) -> None:
    """Make Anthropic input tokens include the cache tokens when the producer left them out."""
    if out.get(g.PROVIDER_NAME) not in (g.Provider.ANTHROPIC, g.Provider.AWS_BEDROCK):
        return
    if g.USAGE_INPUT_TOKENS in src and LEGACY_INPUT_TOKENS not in src:
        return  # already in current OTel form: the convention says inclusive
    raw_input = as_int(out.get(g.USAGE_INPUT_TOKENS))
    if raw_input is None:
        return
    cache = (as_int(out.get(g.USAGE_CACHE_READ_INPUT_TOKENS)) or 0) + (
        as_int(out.get(g.USAGE_CACHE_CREATION_INPUT_TOKENS)) or 0
    )
    if cache <= 0:
        return
    output = as_int(out.get(g.USAGE_OUTPUT_TOKENS)) or 0
    total = next((as_int(src[k]) for k in TOTAL_TOKENS_KEYS if k in src), None)
    excluded = raw_input < cache if total is None else total == raw_input + output + cache
    if excluded:
        out[g.USAGE_INPUT_TOKENS] = raw_input + cache


DIALECT: Final = Dialect(
    name="otel_genai",
    markers=frozenset(
        {
            g.SYSTEM,
            g.USAGE_CACHE_WRITE_INPUT_TOKENS,
            LEGACY_INPUT_TOKENS,
            LEGACY_OUTPUT_TOKENS,
            LEGACY_CACHE_READ,
            LEGACY_CACHE_CREATION,
        }
    ),
    renames=(
        Rename(g.SYSTEM, g.PROVIDER_NAME, provider),
        Rename(g.USAGE_CACHE_WRITE_INPUT_TOKENS, g.USAGE_CACHE_CREATION_INPUT_TOKENS, as_int),
        Rename(LEGACY_INPUT_TOKENS, g.USAGE_INPUT_TOKENS, as_int),
        Rename(LEGACY_OUTPUT_TOKENS, g.USAGE_OUTPUT_TOKENS, as_int),
        Rename(LEGACY_CACHE_READ, g.USAGE_CACHE_READ_INPUT_TOKENS, as_int),
        Rename(LEGACY_CACHE_CREATION, g.USAGE_CACHE_CREATION_INPUT_TOKENS, as_int),
    ),
    builders=(_inclusive_input,),
)
