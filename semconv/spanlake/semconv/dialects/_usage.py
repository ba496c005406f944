"""Token-count consistency: ``gen_ai.usage.input_tokens`` must include cached tokens.

Anthropic's and Bedrock's APIs report uncached input apart from cache reads and writes,
and several instrumentations copy that number verbatim, whatever key they put it under
(even the current OTel one). An inclusive count can never be smaller than the cache
counts, and a provider total that only adds up with the cache counts betrays an
exclusive one; in those two provable cases the cache counts are added back. Any other
count is left as reported.
"""

from __future__ import annotations

from typing import Any, Final

from spanlake.semconv import gen_ai as g
from spanlake.semconv.dialects._values import as_int

CACHE_KEYS: Final = frozenset(
    {
        g.USAGE_CACHE_READ_INPUT_TOKENS,
        g.USAGE_CACHE_CREATION_INPUT_TOKENS,
        g.USAGE_CACHE_WRITE_INPUT_TOKENS,
    }
)
TOTAL_TOKENS_KEYS: Final = ("llm.usage.total_tokens", "gen_ai.usage.total_tokens")


def make_input_inclusive(out: dict[str, Any]) -> None:
    """Add cache reads/writes back into ``out``'s input tokens when provably left out."""
    raw_input = as_int(out.get(g.USAGE_INPUT_TOKENS))
    if raw_input is None:
        return
    creation = out.get(g.USAGE_CACHE_CREATION_INPUT_TOKENS)
    if creation is None:
        creation = out.get(g.USAGE_CACHE_WRITE_INPUT_TOKENS)
    cache = (as_int(out.get(g.USAGE_CACHE_READ_INPUT_TOKENS)) or 0) + (as_int(creation) or 0)
    if cache <= 0:
        return
    excluded = raw_input < cache
    if not excluded:
        output = as_int(out.get(g.USAGE_OUTPUT_TOKENS)) or 0
        total = next((as_int(out[k]) for k in TOTAL_TOKENS_KEYS if k in out), None)
        excluded = total is not None and total == raw_input + output + cache
    if excluded:
        out[g.USAGE_INPUT_TOKENS] = raw_input + cache
