"""The public surface of ``spanlake.tracing`` is exactly what ``__all__`` says."""

from __future__ import annotations

import spanlake.tracing as tracing

EXPECTED = {
    "LiveSpan",
    "SpanType",
    "SpanlakeClient",
    "get_active_trace_id",
    "get_current_active_span",
    "start_span",
    "trace",
    "update_current_trace",
}


def test_all_is_the_documented_surface() -> None:
    assert set(tracing.__all__) == EXPECTED
    assert len(tracing.__all__) == len(EXPECTED)


def test_every_exported_member_exists_and_is_public() -> None:
    for name in tracing.__all__:
        member = getattr(tracing, name)
        assert member is not None
        module = getattr(member, "__module__", "") or ""
        assert module.startswith("spanlake."), (name, module)


def test_no_other_public_names_leak() -> None:
    public = {
        name
        for name in vars(tracing)
        if not name.startswith("_") and not isinstance(getattr(tracing, name), type(tracing))
    }
    assert public == EXPECTED
