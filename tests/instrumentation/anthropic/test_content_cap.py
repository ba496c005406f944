"""``SPANLAKE_CONTENT_MAX_BYTES`` caps the whole recorded value, as the README says: a
405 KB prompt under the 128 KiB default keeps ~128 KiB of its text (it kept 16 KB when
every string was cut to an eighth of the cap)."""

from __future__ import annotations

import json

import anthropic
import pytest
from fakes.anthropic_server import FakeAnthropic, Reply

from spanlake.semconv import gen_ai as ga
from spanlake.semconv.spanlake_attrs import TRUNCATED

PROMPT = "Summarise this log. " + "".join(f"line {i}: all quiet\n" for i in range(19_000))


@pytest.mark.parametrize("cap", [None, 300_000, 20_000])
def test_a_large_prompt_fills_the_cap(
    client: anthropic.Anthropic,
    fake: FakeAnthropic,
    rec: object,
    monkeypatch: pytest.MonkeyPatch,
    cap: int | None,
) -> None:
    assert len(PROMPT) > 400_000
    if cap is not None:
        monkeypatch.setenv("SPANLAKE_CONTENT_MAX_BYTES", str(cap))
    limit = cap or 128 * 1024
    fake.script(Reply(text="All quiet."))
    client.messages.create(
        model="claude-sonnet-5", max_tokens=64, messages=[{"role": "user", "content": PROMPT}]
    )
    (span,) = rec.ours()  # type: ignore[attr-defined]
    stored = str(span.attributes[ga.INPUT_MESSAGES])
    assert 0.9 * limit <= len(stored.encode()) <= limit
    (message,) = json.loads(stored)  # still valid JSON of the same shape
    text = message["parts"][0]["content"]
    assert PROMPT.startswith(text.removesuffix("...[truncated]"))
    (mark,) = [m for m in span.attributes[TRUNCATED] if m.startswith(ga.INPUT_MESSAGES + ":")]
    assert int(mark.rsplit(":", 1)[1]) > len(PROMPT)
