"""``with_raw_response`` / ``with_streaming_response``: observe the parsed result.

The SDK routes both through the same ``create`` with a marker header and returns a response
wrapper instead of the model object. ``with_raw_response`` (``LegacyAPIResponse``) has the
body already: we parse it (the SDK caches the parse, so the app gets the very same object)
and, for streams, put our proxy where the app's ``parse()`` will find it.
``with_streaming_response`` (``APIResponse``) has not read the body yet: we hook that one
instance's ``parse``/``close`` so the span ends when the app parses (or streams) the body,
closes the response, or drops it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

from .._genai._invocation import Invocation
from .._genai._safe import safe_invoke

_RAW_HEADER = "x-stainless-raw-response"

Observe = Callable[[Any], Any]


def mode(kwargs: Mapping[str, Any]) -> str | None:
    """``"true"`` (with_raw_response), ``"stream"`` (with_streaming_response) or None."""
    headers = kwargs.get("extra_headers")
    if not headers:
        return None
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == _RAW_HEADER:
            return str(value)
    return None


def _observe_legacy(inv: Invocation, raw: Any, observe: Observe) -> Any:
    parsed = raw.parse()
    observed = observe(parsed)
    if observed is not parsed:
        # A stream: the SDK caches parse() per type; make the app's parse() return our proxy.
        cache = getattr(raw, "_parsed_by_type", None)
        key = getattr(raw, "_cast_to", None)
        if isinstance(cache, dict) and cache.get(key) is parsed:
            cache[key] = observed
        else:
            inv.end()
    return raw


def observe_sync(raw_mode: str, inv: Invocation, raw: Any, observe: Observe) -> Any:
    """The object the app gets back (always ``raw`` itself), with the span taken care of."""
    if raw_mode == "stream":
        _hook_streaming(inv, raw, observe, is_async=False)
        return raw
    if safe_invoke(_observe_legacy, inv, raw, observe) is None:
        inv.end()
    return raw


def observe_async(raw_mode: str, inv: Invocation, raw: Any, observe: Observe) -> Any:
    """Async twin: ``with_raw_response`` still parses synchronously, streaming parses await."""
    if raw_mode == "stream":
        _hook_streaming(inv, raw, observe, is_async=True)
        return raw
    if safe_invoke(_observe_legacy, inv, raw, observe) is None:
        inv.end()
    return raw


def _hook_streaming(inv: Invocation, raw: Any, observe: Observe, *, is_async: bool) -> None:
    original_parse = raw.parse
    original_close = raw.close
    memo: list[Any] = []  # [observed] once the app parsed with the default type

    def remember(parsed: Any, custom: bool) -> Any:
        if custom:
            return parsed
        if not memo:
            observed = safe_invoke(observe, parsed)
            memo.append(parsed if observed is None else observed)
        return memo[0]

    def end_on_close() -> None:
        state = getattr(memo[0], "_self_state", None) if memo else None
        if state is not None:
            state.finish("closed")  # a stream proxy: keep what it aggregated so far
        else:
            inv.end()

    if is_async:

        async def parse_async(*args: Any, **kwargs: Any) -> Any:
            parsed = await original_parse(*args, **kwargs)
            return remember(parsed, bool(args or kwargs))

        async def close_async() -> Any:
            try:
                return await original_close()
            finally:
                end_on_close()

        raw.parse, raw.close = parse_async, close_async
    else:

        def parse_sync(*args: Any, **kwargs: Any) -> Any:
            parsed = original_parse(*args, **kwargs)
            return remember(parsed, bool(args or kwargs))

        def close_sync() -> Any:
            try:
                return original_close()
            finally:
                end_on_close()

        raw.parse, raw.close = parse_sync, close_sync
    weakref.finalize(raw, inv.end)
