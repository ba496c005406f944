"""OTel GenAI names other than the v1.41 ones we read directly: the deprecated
``gen_ai.system`` and pre-1.27 ``gen_ai.usage.prompt_tokens``/``completion_tokens``, the
newer ``cache_write`` name, and OpenLLMetry's underscore cache names.

Per-modality usage names are not in any released convention yet; nothing to map.

Input-token inclusivity is checked for every span afterwards, in :mod:`._usage`.
"""

from __future__ import annotations

from typing import Final

from spanlake.semconv import gen_ai as g
from spanlake.semconv.dialects._table import Dialect, Rename
from spanlake.semconv.dialects._values import as_int, provider

LEGACY_INPUT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
LEGACY_OUTPUT_TOKENS: Final = "gen_ai.usage.completion_tokens"
LEGACY_CACHE_READ: Final = "gen_ai.usage.cache_read_input_tokens"
LEGACY_CACHE_CREATION: Final = "gen_ai.usage.cache_creation_input_tokens"


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
)
