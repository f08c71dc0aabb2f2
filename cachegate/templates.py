"""Path and key templates of config.yaml, compiled once: whole-path matchers and one-format key renderers."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping
from urllib.parse import quote

_PARAM = re.compile(r"\{([^{}]*)\}")
_PARAM_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_PARAM_TYPES = {"int": r"[0-9]{1,18}", "str": r"[^/]+"}
_KEY_PLACEHOLDER = re.compile(r"^(?:[a-z_][a-z0-9_]*|query|query\.[A-Za-z0-9_.-]+|caller)$")
_KEY_TEXT = re.compile(r"^[A-Za-z0-9_.:/-]*$")


@dataclass(frozen=True, slots=True)
class PathTemplate:
    text: str
    params: tuple[str, ...]
    regex: re.Pattern[str] | None  # None for a static path, matched by equality

    def match(self, path: str) -> dict[str, str] | None:
        if self.regex is None:
            return {} if path == self.text else None
        m = self.regex.fullmatch(path)
        return m.groupdict() if m else None


def parse_path_template(text: str) -> PathTemplate:
    """'/users/{id:int}' -> a whole-path matcher. ValueError says what is wrong."""
    if not text.startswith("/"):
        raise ValueError(f'expected a path starting with /, got "{text}"')
    if "?" in text or "#" in text or "//" in text:
        raise ValueError(f'expected a path without ?, # or //, got "{text}"')
    pattern, params, pos = [], [], 0
    for m in _PARAM.finditer(text):
        literal = text[pos:m.start()]
        if "{" in literal or "}" in literal:
            raise ValueError(f'unbalanced braces in "{text}"')
        name, _, kind = m.group(1).partition(":")
        kind = kind or "str"
        if not _PARAM_NAME.match(name):
            raise ValueError(f'bad parameter name "{name}" in "{text}"')
        if kind not in _PARAM_TYPES:
            raise ValueError(f'unknown parameter type "{kind}" in "{text}" (known: int, str)')
        if name in params:
            raise ValueError(f'parameter "{name}" appears twice in "{text}"')
        before, after = text[m.start() - 1], text[m.end():m.end() + 1]
        if before != "/" or after not in ("", "/"):
            raise ValueError(f'a parameter must fill a whole path segment in "{text}"')
        pattern.append(re.escape(literal))
        pattern.append(f"(?P<{name}>{_PARAM_TYPES[kind]})")
        params.append(name)
        pos = m.end()
    tail = text[pos:]
    if "{" in tail or "}" in tail:
        raise ValueError(f'unbalanced braces in "{text}"')
    if not params:
        return PathTemplate(text, (), None)
    pattern.append(re.escape(tail))
    return PathTemplate(text, tuple(params), re.compile("".join(pattern)))


def _segments(text: str) -> list[tuple[str, str]]:
    """'/users/{id:int}/x' -> [("lit", "users"), ("int", "id"), ("lit", "x")] (a valid template)."""
    out = []
    for segment in text[1:].split("/"):
        m = _PARAM.fullmatch(segment)
        if m is None:
            out.append(("lit", segment))
        else:
            name, _, kind = m.group(1).partition(":")
            out.append((kind or "str", name))
    return out


def covers(wide: str, narrow: str) -> bool:
    """Does path template `wide` match every path that template `narrow` matches? Parameters fill whole
    segments, so it is decided segment by segment: a str parameter takes any non-empty segment, an int
    parameter only digits (an int parameter or a literal of 1 to 18 digits), a literal only itself."""
    a, b = _segments(wide), _segments(narrow)
    if len(a) != len(b):
        return False
    for (kind, text), (other, value) in zip(a, b):
        if kind == "lit":
            if other != "lit" or text != value:
                return False
        elif kind == "int":
            if other == "str" or (other == "lit" and re.fullmatch(_PARAM_TYPES["int"], value) is None):
                return False
        elif other == "lit" and not value:  # a str parameter never matches the empty segment of a trailing /
            return False
    return True


# render(path params, query in canonical form (proxy/canonical.py), caller) -> key
KeyRenderer = Callable[[Mapping[str, str], str, "str | None"], str]


def compile_key_template(text: str, path_params: Iterable[str]) -> tuple[KeyRenderer, frozenset[str]]:
    """'user-search:{query}' -> (render(params, query, caller), placeholders). ValueError says why.

    Rendering is on every request's path, so the template becomes one str.format call."""
    known = set(path_params)
    fmt: list[str] = []
    getters: list[Callable[[Mapping[str, str], str, str | None], str]] = []
    names: list[str] = []  # the path parameters, when they are the only placeholders
    used: set[str] = set()
    pos = 0
    for m in _PARAM.finditer(text):
        literal = text[pos:m.start()]
        _check_key_text(literal, text)
        fmt.append(literal)
        fmt.append("{}")
        name = m.group(1)
        if not _KEY_PLACEHOLDER.match(name):
            raise ValueError(f'bad placeholder "{{{name}}}" in key "{text}"')
        if name == "query":
            getters.append(lambda p, q, c: _all_query(q))
        elif name.startswith("query."):
            getters.append(lambda p, q, c, n=name[6:]: _one_query(q, n))
        elif name == "caller":
            getters.append(lambda p, q, c: _caller(c))
        elif name in known:
            getters.append(lambda p, q, c, n=name: _quote(p[n]))
            names.append(name)
        else:
            raise ValueError(f'placeholder "{{{name}}}" in key "{text}" is not a path parameter '
                             f'(known: {", ".join(sorted(known)) or "none"}; or query, query.NAME, caller)')
        used.add(name)
        pos = m.end()
    _check_key_text(text[pos:], text)
    fmt.append(text[pos:])
    template = "".join(fmt)
    if not getters:
        return (lambda p, q, c: template), frozenset()
    if len(names) == len(getters) == 1:
        only = names[0]
        return (lambda p, q, c: template.format(_quote(p[only]))), frozenset(used)
    return (lambda p, q, c: template.format(*[get(p, q, c) for get in getters])), frozenset(used)


def _quote(value: str) -> str:
    # Most values are plain ids; quoting only the rest keeps a value from forging a separator.
    return value if value.isascii() and value.isalnum() else quote(value, safe="")


def _check_key_text(literal: str, text: str) -> None:
    if "{" in literal or "}" in literal:
        raise ValueError(f'unbalanced braces in key "{text}"')
    if not _KEY_TEXT.match(literal):
        raise ValueError(f'key "{text}" may only use letters, digits and _ . : / - outside placeholders')


def _all_query(query: str) -> str:
    # Already sorted and escaped (proxy/canonical.py): ?a=1&b=2 and ?b=2&a=1 share one entry, no value can
    # forge a separator, and the key names exactly the query that goes upstream.
    return query


def _one_query(query: str, name: str) -> str:
    prefix = name + "="  # names in key templates are unreserved characters, the same escaped or not
    values = [part[len(prefix):] for part in query.split("&") if part.startswith(prefix)] if query else []
    # An absent parameter is not an empty one (?name=): a bare % never appears in an escaped value.
    return ",".join(values) if values else "%"


def _caller(caller: str | None) -> str:
    if caller is None:  # config validation forbids {caller} on auth: none routes; never key on "nobody"
        raise LookupError("a caller-scoped key needs a verified caller")
    return _quote(caller)


# render(row) -> key, from the columns of one row of a table (the invalidator's rules)
RowRenderer = Callable[[Mapping[str, object]], str]


def compile_row_template(text: str) -> tuple[RowRenderer, tuple[str, ...]]:
    """'user:{id}' over a row's columns -> (render(row), columns). ValueError says why.

    A value renders as a route's path parameter does (`_quote`), so a rule and a route that name one key
    agree: the row {id: 42} and the path /users/42 both give user:42. A missing column is a KeyError."""
    fmt: list[str] = []
    columns: list[str] = []
    pos = 0
    for m in _PARAM.finditer(text):
        literal = text[pos:m.start()]
        _check_key_text(literal, text)
        fmt.append(literal.replace("{", "{{").replace("}", "}}"))
        fmt.append("{}")
        name = m.group(1)
        if not _PARAM_NAME.match(name):
            raise ValueError(f'bad placeholder "{{{name}}}" in "{text}" (expected a column name)')
        columns.append(name)
        pos = m.end()
    _check_key_text(text[pos:], text)
    fmt.append(text[pos:])
    template, names = "".join(fmt), tuple(columns)
    return (lambda row: template.format(*[_quote(_column_text(row[n])) for n in names])), names


def key_shape(text: str) -> str:
    """The fixed text of a key template with every placeholder as one mark: 'user:{id}' and 'user:{caller}'
    have one shape, so a rule's key can be matched with the routes' keys whatever the placeholders' names."""
    return _PARAM.sub("\x00", text)


def _column_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)
