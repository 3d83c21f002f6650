"""The `/` filter language, pure and Textual-free.

    web node:n7 tenant:acme,globex state:running -image:redis

* free words must all appear (case-insensitive) in the row's searchable text
  (name, id, image, node, tenant for a container);
* ``node:``, ``tenant:``, ``state:``, ``image:`` qualifiers: values separated
  by commas are alternatives (OR), different qualifiers must all hold (AND);
* a value matches as a case-insensitive substring, or as a shell glob when it
  holds ``*``, ``?`` or ``[`` (``node:n1`` also matches ``n10``; ``node:n1``
  exactly is ``node:n1$`` — a trailing ``$`` anchors the value);
* a leading ``-`` negates a word or a qualifier (``-state:exited``).

``state:`` also knows the badges and health: ``isolated``, ``migrating`` (or any
busy text), ``unhealthy``, ``healthy``, ``oom``, and ``up``/``down`` for nodes.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from console.fleet.model import ContainerSnapshot, NodeSnapshot, TenantSnapshot

QUALIFIERS = ("node", "tenant", "state", "image")


@dataclass(frozen=True, slots=True)
class Term:
    field: str  # "" for a free word, else one of QUALIFIERS
    values: tuple[str, ...]  # lower-cased alternatives
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Query:
    terms: tuple[Term, ...] = ()
    errors: tuple[str, ...] = ()  # unknown qualifiers, shown to the operator, otherwise ignored

    @property
    def empty(self) -> bool:
        return not self.terms

    def describe(self) -> str:
        return " ".join(
            ("-" if t.negate else "") + (f"{t.field}:" if t.field else "") + ",".join(t.values) for t in self.terms
        )


def parse(text: str) -> Query:
    terms: list[Term] = []
    errors: list[str] = []
    for word in text.split():
        negate = word.startswith("-") and len(word) > 1
        if negate:
            word = word[1:]
        field, colon, rest = word.partition(":")
        if colon and field.lower() in QUALIFIERS:
            values = tuple(v.lower() for v in rest.split(",") if v)
            if values:
                terms.append(Term(field.lower(), values, negate))
            continue
        if colon and field and field.isalpha() and rest:
            errors.append(f"unknown qualifier {field}: (use {', '.join(q + ':' for q in QUALIFIERS)})")
            continue
        terms.append(Term("", (word.lower(),), negate))
    return Query(tuple(terms), tuple(errors))


def value_matches(pattern: str, text: str) -> bool:
    text = text.lower()
    if pattern.endswith("$"):
        pattern = pattern[:-1]
        return fnmatch.fnmatchcase(text, pattern) if _is_glob(pattern) else text == pattern
    if _is_glob(pattern):
        return fnmatch.fnmatchcase(text, pattern)
    return pattern in text


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _any(values: tuple[str, ...], candidates: Iterable[str]) -> bool:
    cands = [c for c in candidates if c]
    return any(value_matches(v, c) for v in values for c in cands)


# ---------------------------------------------------------------- per kind


def container_states(c: ContainerSnapshot) -> tuple[str, ...]:
    out = [c.state]
    if c.isolated:
        out.append("isolated")
    if c.busy:
        out.append(c.busy)
    if c.health:
        out.append(c.health)
    if c.oom_killed:
        out.append("oom")
    return tuple(out)


def _container_field(c: ContainerSnapshot, field: str) -> tuple[str, ...]:
    if field == "node":
        return (c.node,)
    if field == "tenant":
        return (c.tenant,)
    if field == "image":
        return (c.image,)
    if field == "state":
        return container_states(c)
    return (c.name, c.id, c.image, c.node, c.tenant)


def _node_field(n: NodeSnapshot, field: str) -> tuple[str, ...]:
    if field == "node":
        return (n.name,)
    if field == "state":
        states = [n.state.value, "up" if n.up else "down"]
        if n.cordoned:
            states.append("cordoned")
        return tuple(states)
    if field in ("tenant", "image"):
        return ()
    return (n.name, n.url, n.engine, n.engine_version, *(f"{k}={v}" for k, v in n.labels))


def _tenant_field(t: TenantSnapshot, field: str) -> tuple[str, ...]:
    if field == "tenant":
        return (t.name,)
    if field == "node":
        return t.nodes
    if field in ("state", "image"):
        return ()
    return (t.name, t.top_container or "")


def _compile(query: Query, fields: Callable[[object, str], tuple[str, ...]]) -> Callable[[object], bool]:
    """One predicate for the whole query; plain substrings (the common case) skip glob machinery."""
    checks: list[tuple[Callable[[object], bool], bool]] = []
    for term in query.terms:
        checks.append((_term_check(term, fields), term.negate))

    def match(row: object) -> bool:
        for check, negate in checks:
            if check(row) == negate:
                return False
        return True

    return match


def _term_check(term: Term, fields: Callable[[object, str], tuple[str, ...]]) -> Callable[[object], bool]:
    values = term.values
    field = term.field
    if any(_is_glob(v) or v.endswith("$") for v in values):
        return lambda row: _any(values, fields(row, field))
    if len(values) == 1:
        value = values[0]
        return lambda row: value in "\0".join(fields(row, field)).lower()
    return lambda row: any(v in "\0".join(fields(row, field)).lower() for v in values)


def container_matcher(query: Query) -> Callable[[ContainerSnapshot], bool]:
    return _compile(query, _container_field)  # type: ignore[arg-type]


def node_matcher(query: Query) -> Callable[[NodeSnapshot], bool]:
    return _compile(query, _node_field)  # type: ignore[arg-type]


def tenant_matcher(query: Query) -> Callable[[TenantSnapshot], bool]:
    return _compile(query, _tenant_field)  # type: ignore[arg-type]
