"""The shape of a dialect table and the one loop that applies it.

A dialect is data: the marker keys that reveal it, key renames with a value transform,
prefix renames (``traceloop.association.properties.X`` -> trace metadata ``X``), and a few
named builders for what a rename cannot express (flattened message lists, token sums).
Every write goes through :func:`put`, which never overwrites a key already set, so keys
already in OTel GenAI / spanlake form win and the first dialect to fill a key wins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spanlake.semconv.dialects._values import Transform, identity

#: ``builder(source_attributes, out)``: adds derived keys to ``out`` through :func:`put`.
Builder = Callable[[Mapping[str, Any], dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Rename:
    """``out[target] = transform(attrs[source])`` unless the target is already set."""

    source: str
    target: str
    transform: Transform = identity


@dataclass(frozen=True, slots=True)
class PrefixRename:
    """Every ``source_prefix + k`` becomes ``target_prefix + k`` (as a string value)."""

    source_prefix: str
    target_prefix: str
    transform: Transform = identity
    #: Suffixes handled elsewhere (e.g. ``user_id`` -> ``user.id``), not copied.
    skip: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    #: Keys only this dialect writes; a span carrying none of them skips the dialect.
    markers: frozenset[str]
    renames: tuple[Rename, ...] = ()
    prefix_renames: tuple[PrefixRename, ...] = ()
    builders: tuple[Builder, ...] = ()
    #: Keys whose value the dialect stores JSON-encoded (MLflow): decoded in place first.
    decode_keys: frozenset[str] = field(default_factory=frozenset)
    decode: Transform = identity


def put(out: dict[str, Any], key: str, value: Any) -> None:
    """Set ``out[key]`` unless it is already set or ``value`` is None/empty."""
    if value is None or value == "" or key in out:
        return
    out[key] = value


def apply(dialect: Dialect, src: Mapping[str, Any], out: dict[str, Any]) -> None:
    """Fill ``out`` from ``src`` by ``dialect``'s table."""
    if dialect.decode_keys:
        for key in dialect.decode_keys.intersection(src):
            decoded = dialect.decode(src[key])
            if decoded is None:
                out.pop(key, None)
            else:
                out[key] = decoded
        src = out
    for rule in dialect.renames:
        if rule.target not in out and rule.source in src:
            put(out, rule.target, rule.transform(src[rule.source]))
    if dialect.prefix_renames:
        prefixes = tuple(p.source_prefix for p in dialect.prefix_renames)
        for key in [k for k in src if k.startswith(prefixes)]:
            for prule in dialect.prefix_renames:
                suffix = key[len(prule.source_prefix) :]
                if key.startswith(prule.source_prefix) and suffix and suffix not in prule.skip:
                    put(out, prule.target_prefix + suffix, prule.transform(src[key]))
    for build in dialect.builders:
        build(src, out)
