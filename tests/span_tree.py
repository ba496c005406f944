"""Finished OTel spans as a forest, for tests that assert on a trace's shape."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan


class Tree:
    """The finished spans as a forest: ``render()`` gives ``name [TYPE]`` lines, indented."""

    def __init__(self, spans: tuple[ReadableSpan, ...]) -> None:
        self.spans = spans
        self.children: dict[int | None, list[ReadableSpan]] = {}
        for span in sorted(spans, key=lambda s: s.start_time or 0):
            parent = span.parent.span_id if span.parent is not None else None
            self.children.setdefault(parent, []).append(span)

    def roots(self) -> list[ReadableSpan]:
        return self.children.get(None, [])

    def kids(self, span: ReadableSpan) -> list[ReadableSpan]:
        return self.children.get(span.context.span_id, [])

    def render(self, root: ReadableSpan | None = None) -> list[str]:
        lines: list[str] = []

        def walk(span: ReadableSpan, depth: int) -> None:
            kind = (span.attributes or {}).get("spanlake.span.type")
            lines.append("  " * depth + f"{span.name} [{kind}]")
            for kid in self.kids(span):
                walk(kid, depth + 1)

        for top in [root] if root is not None else self.roots():
            walk(top, 0)
        return lines

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, (name, [s.name for s in self.spans])
        return found[0]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})
