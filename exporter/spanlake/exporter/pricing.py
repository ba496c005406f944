"""Model prices (USD per million tokens) for trace cost; users extend the table.

Lookup normalises provider-specific ids (``us.anthropic.claude-3-5-sonnet-20240620-v1:0``,
``claude-3-5-sonnet-latest``) to a family key and takes the longest matching prefix, so
dated and regional variants price like their family. Extend with :func:`register_price`
or a JSON file named by ``SPANLAKE_PRICES_FILE`` (``{"model-prefix": {"input": 3.0,
"output": 15.0, "cache_read": 0.3, "cache_creation": 3.75}}``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from functools import lru_cache

from spanlake.exporter.records import TokenUsage

_logger = logging.getLogger(__name__)
ENV_PRICES_FILE = "SPANLAKE_PRICES_FILE"


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. Cache prices default to the input price when unknown."""

    input: float
    output: float
    cache_read: float | None = None
    cache_creation: float | None = None

    def cost(self, usage: TokenUsage) -> float:
        cache_read = usage.cache_read_input_tokens
        cache_creation = usage.cache_creation_input_tokens
        plain_input = max(usage.input_tokens - cache_read - cache_creation, 0)
        total = (
            plain_input * self.input
            + usage.output_tokens * self.output
            + cache_read * (self.input if self.cache_read is None else self.cache_read)
            + cache_creation * (self.input if self.cache_creation is None else self.cache_creation)
        )
        return total / 1_000_000


_PRICES: dict[str, Price] = {
    # Anthropic (also through Bedrock / Vertex)
    "claude-opus-4": Price(15.0, 75.0, 1.5, 18.75),
    "claude-sonnet-4": Price(3.0, 15.0, 0.3, 3.75),
    "claude-3-7-sonnet": Price(3.0, 15.0, 0.3, 3.75),
    "claude-3-5-sonnet": Price(3.0, 15.0, 0.3, 3.75),
    "claude-3-5-haiku": Price(0.8, 4.0, 0.08, 1.0),
    "claude-haiku-4": Price(1.0, 5.0, 0.1, 1.25),
    "claude-3-haiku": Price(0.25, 1.25, 0.03, 0.3),
    "claude-3-opus": Price(15.0, 75.0, 1.5, 18.75),
    # OpenAI
    "gpt-4o-mini": Price(0.15, 0.6, 0.075),
    "gpt-4o": Price(2.5, 10.0, 1.25),
    "gpt-4.1-nano": Price(0.1, 0.4, 0.025),
    "gpt-4.1-mini": Price(0.4, 1.6, 0.1),
    "gpt-4.1": Price(2.0, 8.0, 0.5),
    "o3-mini": Price(1.1, 4.4, 0.55),
    "o4-mini": Price(1.1, 4.4, 0.275),
    "text-embedding-3-small": Price(0.02, 0.0),
    "text-embedding-3-large": Price(0.13, 0.0),
    # Amazon / Meta / Mistral / Cohere on Bedrock
    "nova-micro": Price(0.035, 0.14),
    "nova-lite": Price(0.06, 0.24),
    "nova-pro": Price(0.8, 3.2),
    "titan-text-express": Price(0.2, 0.6),
    "llama3-70b-instruct": Price(2.65, 3.5),
    "llama3-8b-instruct": Price(0.3, 0.6),
    "mistral-large": Price(4.0, 12.0),
    "command-r-plus": Price(3.0, 15.0),
    "command-r": Price(0.5, 1.5),
}
_USER_PRICES: dict[str, Price] = {}
_PREFIX = re.compile(r"^(?:(?:us|eu|apac|global)\.)?(?:[a-z0-9-]+\.)?")


def register_price(
    model_prefix: str,
    input: float,
    output: float,
    cache_read: float | None = None,
    cache_creation: float | None = None,
) -> None:
    """Add or override a price (USD per million tokens) for models starting with the prefix."""
    _USER_PRICES[model_prefix.lower()] = Price(input, output, cache_read, cache_creation)
    price_for.cache_clear()


@lru_cache(maxsize=1)
def _file_prices() -> dict[str, Price]:
    path = os.environ.get(ENV_PRICES_FILE)
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
        return {k.lower(): Price(**v) for k, v in raw.items()}
    except (OSError, ValueError, TypeError) as exc:
        _logger.warning("Ignoring %s=%s: %s", ENV_PRICES_FILE, path, exc)
        return {}


@lru_cache(maxsize=1024)
def price_for(model: str) -> Price | None:
    """The price of ``model``, or None when unknown."""
    name = model.lower()
    candidates = [name]
    stripped = _PREFIX.sub("", name, count=1)
    if stripped != name:
        candidates.append(stripped)
    for table in (_USER_PRICES, _file_prices(), _PRICES):
        best: str | None = None
        for key in table:
            if any(c.startswith(key) for c in candidates) and (
                best is None or len(key) > len(best)
            ):
                best = key
        if best is not None:
            return table[best]
    return None
