"""Folds Anthropic raw stream events (``message_start`` ... ``message_stop``) into a Response.

Works on the raw events both ``messages.create(stream=True)`` and the ``messages.stream()``
helper read, so one accumulator serves every streaming entry point.
"""

from __future__ import annotations

import json
from typing import Any

from spanlake.instrumentation._genai import (
    ContentConfig,
    Part,
    Response,
    Usage,
    generic_part,
    output_message,
    reasoning_part,
    text_part,
    tool_call_part,
)

from ._convert import get, usage_from


class _Block:
    __slots__ = ("id", "input", "json", "kind", "name", "text")

    def __init__(self, block: Any) -> None:
        kind = self.kind = str(get(block, "type") or "text")
        self.json: list[str] = []
        # Read only the fields this kind has: a missing field on an SDK (pydantic) model
        # costs ~2 µs (its __getattr__ raises), several per stream.
        if kind == "text" or kind == "thinking":
            self.id = self.name = self.input = None
            self.text: list[str] = [str(get(block, kind) or "")]
            return
        self.id = get(block, "id")
        self.name = get(block, "name")
        self.text = [str(get(block, "text") or get(block, "thinking") or "")]
        self.input = get(block, "input")

    def part(self) -> Part:
        if self.kind in ("tool_use", "server_tool_use"):
            args: Any = self.input
            raw = "".join(self.json)
            if raw:
                try:
                    args = json.loads(raw)
                except ValueError:
                    args = raw
            return tool_call_part(self.id, self.name, args)
        if self.kind == "text":
            return text_part("".join(self.text))
        if self.kind == "thinking":
            return reasoning_part("".join(self.text))
        return generic_part(self.kind)


class AnthropicAccumulator:
    """``StreamAccumulator`` for Anthropic Messages streams."""

    __slots__ = ("_blocks", "_cfg", "_id", "_keep", "_model", "_role", "_stop", "_usage")

    def __init__(self, cfg: ContentConfig) -> None:
        self._cfg = cfg
        self._keep = cfg.enabled  # aggregate text only when it will be recorded
        self._id: str | None = None
        self._model: str | None = None
        self._role = "assistant"
        self._stop: str | None = None
        self._usage: Usage | None = None
        self._blocks: dict[int, _Block] = {}

    def _merge_usage(self, usage: Any) -> None:
        new = usage_from(usage)
        if new is None:
            return
        if self._usage is None:
            self._usage = new
            return
        # message_delta carries cumulative counts; keep earlier values it leaves out.
        old = self._usage
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "reasoning_output_tokens",
        ):
            value = getattr(new, name)
            if value is not None:
                setattr(old, name, value)

    def add(self, chunk: Any) -> str | None:
        # Stream events are SDK models: plain attribute reads keep the per-chunk cost low.
        kind = getattr(chunk, "type", None)
        if kind == "content_block_delta":
            delta = chunk.delta
            dkind = getattr(delta, "type", None)
            if dkind == "text_delta":
                text: str = delta.text or ""
            elif dkind == "input_json_delta":
                text = delta.partial_json or ""
            elif dkind == "thinking_delta":
                text = delta.thinking or ""
            else:
                return None
            if self._keep:
                block = self._blocks.get(chunk.index)
                if block is not None:
                    (block.json if dkind == "input_json_delta" else block.text).append(text)
            return text
        if kind == "content_block_start":
            self._blocks[chunk.index] = _Block(chunk.content_block)
        elif kind == "message_start":
            msg = chunk.message
            self._id = getattr(msg, "id", None)
            self._model = getattr(msg, "model", None)
            self._role = str(getattr(msg, "role", None) or "assistant")
            self._merge_usage(getattr(msg, "usage", None))
        elif kind == "message_delta":
            stop = getattr(chunk.delta, "stop_reason", None)
            if stop:
                self._stop = str(stop)
            self._merge_usage(getattr(chunk, "usage", None))
        return None

    def response(self) -> Response:
        output = None
        if self._cfg.enabled and (self._blocks or self._id or self._stop):
            parts = [self._blocks[i].part() for i in sorted(self._blocks)]
            output = [output_message(self._role, parts, self._stop)]
        return Response(
            id=self._id,
            model=self._model,
            finish_reasons=[self._stop] if self._stop else None,
            usage=self._usage,
            output_messages=output,
        )
