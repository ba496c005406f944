"""The search filter and order-by grammar: a pure parser producing a small AST.

Every store compiles the same AST (SQLite to SQL, the lake stores to their engine), so a
filter means the same thing everywhere. Grammar (keywords case-insensitive)::

    expr       := term (OR term)*
    term       := factor (AND factor)*
    factor     := '(' expr ')' | comparison
    comparison := field op value | field [NOT] IN '(' value (',' value)* ')'
    op         := = | != | <> | < | > | <= | >= | LIKE | ILIKE | NOT LIKE | NOT ILIKE
    value      := 'string' | "string" | number | TRUE | FALSE
    field      := [trace. | attributes.] NAME | tags.KEY | metadata.KEY | model | provider
                | span.name | span.type | span.model | span.provider | span.attributes.KEY
                | feedback.NAME | expectation.NAME

A KEY may be quoted with backticks (``tags.`my.key```) to hold dots or spaces.

Semantics: trace fields compare the trace record; ``model``/``provider`` and ``span.*`` are
true when *any* span of the trace matches (their ``!=`` / ``NOT IN`` / ``NOT LIKE`` mean no
span matches); ``tags``/``metadata`` keys that are absent never match; ``feedback.NAME`` /
``expectation.NAME`` compare the JSON value of any assessment of that name (TRUE/FALSE
compare booleans).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, TypeAlias

from spanlake.exporter.errors import FilterError

Value: TypeAlias = "str | int | float | bool"
FieldKind = Literal[
    "trace", "tag", "metadata", "model", "provider", "span", "feedback", "expectation"
]

#: Trace-record fields: name -> "num" | "str".
TRACE_FIELDS: dict[str, str] = {
    "trace_id": "str",
    "experiment": "str",
    "name": "str",
    "state": "str",
    "request_time_ms": "num",
    "execution_time_ms": "num",
    "request_preview": "str",
    "response_preview": "str",
    "client_request_id": "str",
    "service_name": "str",
    "span_count": "num",
    "cost_usd": "num",
    "input_tokens": "num",
    "output_tokens": "num",
    "total_tokens": "num",
    "cache_read_input_tokens": "num",
    "cache_creation_input_tokens": "num",
    "reasoning_output_tokens": "num",
}

#: MLflow's names and friendly shorthands for the canonical trace fields.
TRACE_FIELD_ALIASES: dict[str, str] = {
    "status": "state",
    "timestamp_ms": "request_time_ms",
    "timestamp": "request_time_ms",
    "request_time": "request_time_ms",
    "duration_ms": "execution_time_ms",
    "latency_ms": "execution_time_ms",
    "execution_time": "execution_time_ms",
    "experiment_name": "experiment",
    "run": "experiment",
    "request_id": "trace_id",
    "cost": "cost_usd",
    "tokens": "total_tokens",
    "service": "service_name",
}

#: Span-level fields reachable as ``span.X``: name -> "num" | "str".
SPAN_FIELDS: dict[str, str] = {
    "name": "str",
    "type": "str",
    "span_type": "str",
    "model": "str",
    "provider": "str",
    "status": "str",
}

ORDERABLE: frozenset[str] = frozenset(TRACE_FIELDS)
DEFAULT_ORDER: tuple[tuple[str, bool], ...] = (("request_time_ms", False),)

_OPS = {"=", "!=", "<", ">", "<=", ">=", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE", "IN", "NOT IN"}
_NEGATIVE_OPS = {"!=", "NOT LIKE", "NOT ILIKE", "NOT IN"}


@dataclass(frozen=True, slots=True)
class Field:
    """What a comparison reads: ``kind`` plus a ``key`` (trace field, tag key, span field...)."""

    kind: FieldKind
    key: str
    #: For ``span.attributes.KEY`` the attribute key; empty otherwise.
    attr: str = ""

    @property
    def value_type(self) -> str:
        """``num``, ``str`` or ``any`` (JSON-valued: span attributes, assessments)."""
        if self.kind == "trace":
            return TRACE_FIELDS[self.key]
        if self.kind == "span":
            return "any" if self.key == "attributes" else SPAN_FIELDS[self.key]
        if self.kind in ("feedback", "expectation"):
            return "any"
        return "str"


@dataclass(frozen=True, slots=True)
class Comparison:
    field: Field
    op: str  # one of _OPS, normalised ("<>" -> "!=")
    value: Value | tuple[Value, ...]

    @property
    def negative(self) -> bool:
        """True for !=, NOT LIKE, NOT ILIKE, NOT IN (on any-span fields: *no* span matches)."""
        return self.op in _NEGATIVE_OPS


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


Node: TypeAlias = "Comparison | And | Or"


# --- tokenizer -----------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<num>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)(?![A-Za-z_])
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<comma>,)
  | (?P<ident>(?:[A-Za-z_][A-Za-z0-9_\-]*|`[^`]+`)(?:\.(?:[A-Za-z0-9_][A-Za-z0-9_\-]*|`[^`]+`))*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            bad = text[pos:].split(None, 1)[0][:20]
            raise FilterError(
                f"Invalid filter at position {pos}: unexpected {bad!r}", position=pos, token=bad
            )
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    return tokens


def _unquote(s: str) -> str:
    quote = s[0]
    body = s[1:-1].replace(quote * 2, quote)
    return re.sub(r"\\(.)", r"\1", body)


def _split_ident(text: str) -> list[str]:
    parts = re.findall(r"`[^`]+`|[^.`]+", text)
    return [p[1:-1] if p.startswith("`") else p for p in parts]


def resolve_field(text: str, pos: int = 0) -> Field:
    """The :class:`Field` an identifier names, or a FilterError pointing at it."""
    parts = _split_ident(text)
    head = parts[0].lower()
    if head in ("trace", "attributes", "attribute", "info") and len(parts) == 2:
        parts, head = parts[1:], parts[1].lower()
    if len(parts) == 1:
        name = TRACE_FIELD_ALIASES.get(head, head)
        if name in TRACE_FIELDS:
            return Field("trace", name)
        if head in ("model", "provider"):
            return Field(head, head)  # type: ignore[arg-type]
    elif head in ("tags", "tag") and len(parts) >= 2:
        return Field("tag", ".".join(parts[1:]))
    elif head in ("metadata", "request_metadata") and len(parts) >= 2:
        return Field("metadata", ".".join(parts[1:]))
    elif head in ("feedback", "expectation", "assessments", "assessment") and len(parts) >= 2:
        kind = "expectation" if head == "expectation" else "feedback"
        return Field(kind, ".".join(parts[1:]))  # type: ignore[arg-type]
    elif head in ("span", "spans") and len(parts) >= 2:
        sub = parts[1].lower()
        if sub in ("attributes", "attribute", "attr") and len(parts) >= 3:
            return Field("span", "attributes", ".".join(parts[2:]))
        if len(parts) == 2 and sub in SPAN_FIELDS:
            return Field("span", "type" if sub == "span_type" else sub)
    raise FilterError(
        f"Invalid filter at position {pos}: unknown field {text!r}", position=pos, token=text
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def _peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _error(self, expected: str) -> FilterError:
        tok = self._peek()
        if tok is None:
            return FilterError(
                f"Invalid filter: expected {expected} at end of input", position=len(self.text)
            )
        return FilterError(
            f"Invalid filter at position {tok.pos}: expected {expected}, got {tok.text!r}",
            position=tok.pos,
            token=tok.text,
        )

    def _kw(self, *words: str) -> bool:
        """Consume the keyword sequence if present."""
        for k, word in enumerate(words):
            tok = self.toks[self.i + k] if self.i + k < len(self.toks) else None
            if tok is None or tok.kind != "ident" or tok.text.upper() != word:
                return False
        self.i += len(words)
        return True

    def parse(self) -> Node:
        if not self.toks:
            raise FilterError("Invalid filter: empty expression", position=0)
        node = self._expr()
        if self._peek() is not None:
            raise self._error("AND, OR or end of filter")
        return node

    def _expr(self) -> Node:
        items = [self._term()]
        while self._kw("OR"):
            items.append(self._term())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _term(self) -> Node:
        items = [self._factor()]
        while self._kw("AND"):
            items.append(self._factor())
        return items[0] if len(items) == 1 else And(tuple(items))

    def _factor(self) -> Node:
        tok = self._peek()
        if tok is not None and tok.kind == "lp":
            self.i += 1
            node = self._expr()
            tok = self._peek()
            if tok is None or tok.kind != "rp":
                raise self._error("')'")
            self.i += 1
            return node
        return self._comparison()

    def _comparison(self) -> Comparison:
        tok = self._peek()
        if tok is None or tok.kind != "ident" or tok.text.upper() in ("AND", "OR", "IN", "NOT"):
            raise self._error("a field name")
        self.i += 1
        field = resolve_field(tok.text, tok.pos)
        op_tok = self._peek()
        op = self._operator()
        if op in ("IN", "NOT IN"):
            values = self._value_list()
            for v in values:
                self._check_type(field, op, v, op_tok)
            return Comparison(field, op, values)
        value = self._value()
        self._check_type(field, op, value, op_tok)
        return Comparison(field, op, value)

    def _operator(self) -> str:
        tok = self._peek()
        if tok is not None and tok.kind == "op":
            self.i += 1
            return "!=" if tok.text == "<>" else tok.text
        for words in (
            ("NOT", "ILIKE"),
            ("NOT", "LIKE"),
            ("NOT", "IN"),
            ("ILIKE",),
            ("LIKE",),
            ("IN",),
        ):
            if self._kw(*words):
                return " ".join(words)
        raise self._error("a comparison operator (=, !=, <, >, <=, >=, LIKE, ILIKE, IN)")

    def _value(self) -> Value:
        tok = self._peek()
        if tok is None:
            raise self._error("a value")
        if tok.kind == "str":
            self.i += 1
            return _unquote(tok.text)
        if tok.kind == "num":
            self.i += 1
            num = float(tok.text)
            return int(num) if num.is_integer() and not re.search(r"[.eE]", tok.text) else num
        if tok.kind == "ident" and tok.text.upper() in ("TRUE", "FALSE"):
            self.i += 1
            return tok.text.upper() == "TRUE"
        raise self._error("a quoted string or a number")

    def _value_list(self) -> tuple[Value, ...]:
        tok = self._peek()
        if tok is None or tok.kind != "lp":
            raise self._error("'(' after IN")
        self.i += 1
        values = [self._value()]
        while (tok := self._peek()) is not None and tok.kind == "comma":
            self.i += 1
            values.append(self._value())
        tok = self._peek()
        if tok is None or tok.kind != "rp":
            raise self._error("',' or ')'")
        self.i += 1
        return tuple(values)

    def _check_type(self, field: Field, op: str, value: Value, tok: _Tok | None) -> None:
        kind = field.value_type
        pos = tok.pos if tok else 0
        name = field.key if field.kind == "trace" else f"{field.kind}.{field.key}"
        if op in ("LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE") and not isinstance(value, str):
            raise FilterError(
                f"Invalid filter at position {pos}: {op} needs a quoted string pattern",
                position=pos,
                token=str(value),
            )
        if kind == "num" and (isinstance(value, (str, bool))):
            raise FilterError(
                f"Invalid filter at position {pos}: {name} is numeric, got {value!r}",
                position=pos,
                token=repr(value),
            )
        if kind == "str" and not isinstance(value, str):
            raise FilterError(
                f"Invalid filter at position {pos}: {name} compares to a quoted string, got {value!r}",
                position=pos,
                token=repr(value),
            )
        if kind == "str" and op in ("<", ">", "<=", ">=") and field.kind != "trace":
            raise FilterError(
                f"Invalid filter at position {pos}: {op} is not defined for {name}",
                position=pos,
                token=op,
            )


def parse_filter(text: str | None) -> Node | None:
    """Parse a filter string; None/blank means "everything". Raises :class:`FilterError`."""
    if text is None or not text.strip():
        return None
    return _Parser(text).parse()


def parse_order_by(clauses: list[str] | tuple[str, ...] | None) -> tuple[tuple[str, bool], ...]:
    """``["execution_time_ms DESC", "name"]`` -> ((field, ascending), ...); default newest first."""
    if not clauses:
        return DEFAULT_ORDER
    out: list[tuple[str, bool]] = []
    for clause in clauses:
        parts = clause.split()
        if not parts or len(parts) > 2:
            raise FilterError(f"Invalid order_by clause {clause!r}", token=clause)
        field = resolve_field(parts[0])
        if field.kind != "trace":
            raise FilterError(
                f"Invalid order_by clause {clause!r}: cannot order by {parts[0]!r}", token=parts[0]
            )
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise FilterError(
                f"Invalid order_by clause {clause!r}: expected ASC or DESC, got {parts[1]!r}",
                token=parts[1],
            )
        out.append((field.key, direction == "ASC"))
    return tuple(out)


def like_to_regex(pattern: str, *, case_insensitive: bool) -> re.Pattern[str]:
    """SQL LIKE pattern (``%`` any run, ``_`` one char) as a compiled full-match regex."""
    parts = []
    for ch in pattern:
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if case_insensitive else 0))
