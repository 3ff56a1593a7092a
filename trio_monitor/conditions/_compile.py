"""A condition as written ("[BODY].status == UP") -> a checked, compiled `Condition`.

Compiled once, at config load, against the placeholders the target's kind offers: a
typo, an unknown placeholder, one the kind does not have, or a comparison that cannot
mean anything ("[IP] > 5") is a `ConditionError` (one line), never a probe failure.
What runs per probe is a closure over getters and pre-parsed literals.

The syntax is Gatus's: `LEFT OP RIGHT`, OP one of == != < <= > >= between spaces (the
leftmost one outside brackets and parentheses); each side a placeholder ([STATUS],
[BODY].a.b[0], [HEADER].name), `len(...)` or `has(...)` of one, `pat(...)` or `any(...)`
(== and != only), or literal text.
"""

from __future__ import annotations

import fnmatch
import json
import operator
import re
from collections.abc import Callable, Collection, Mapping

from attrs import field, frozen

from .._records import PHASES
from ._values import MISSING, Type, number, parse_duration_ms, parse_number, same, shown, text

Getter = Callable[["Scope"], object]


class ConditionError(ValueError):
    """A condition that cannot be compiled; the message is one user-facing line."""


# Gatus placeholders we cannot offer, and why (a config error says so)
UNSUPPORTED = {
    "DOMAIN_EXPIRATION": "trio-monitor does no WHOIS/RDAP look-ups for domain expiry",
    "CONTEXT": "trio-monitor has no Gatus suites, so no suite context",
}
# FIELDS placeholders whose names are known in advance (a typo is a config error),
# and those whose values are durations in milliseconds
_KNOWN_FIELDS: Mapping[str, frozenset[str]] = {"PHASE": frozenset(PHASES)}
_DURATION_FIELDS = frozenset({"PHASE"})

_ORDERING: Mapping[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_TWO_CHARACTER = frozenset({"==", "!=", "<=", ">="})
_FUNCTION = re.compile(r"([a-z]+)\((.*)\)", re.DOTALL)
_PLACEHOLDER = re.compile(r"\[([A-Za-z_]+)\](.*)", re.DOTALL)
_FIELD_NAME = re.compile(r"\.([^\s.\[\]()]+)")
_BOOLS = {"true": True, "false": False}

# what a side's value is, for type checks: a number, text, true/false, or "any" (a
# JSON value or a header: a number where it is one, else text)
NUM, TEXT, BOOL, ANY = "a number", "text", "true or false", "any"


class Scope:
    """One probe's facts while its conditions are checked; each body parsed once."""

    __slots__ = ("_json", "facts")

    def __init__(self, facts: Mapping[str, object]) -> None:
        self.facts = facts
        self._json: dict[str, object] = {}  # by body placeholder: its JSON, or MISSING

    def fact(self, name: str) -> object:
        value = self.facts.get(name)
        return MISSING if value is None else value

    def body_text(self, name: str = "BODY") -> object:
        body = self.facts.get(name)
        if isinstance(body, bytes | bytearray):
            return body.decode("utf-8", "replace").strip()
        return MISSING if body is None else str(body).strip()

    def body_json(self, name: str = "BODY") -> object:
        found = self._json.get(name, _UNPARSED)
        if found is _UNPARSED:
            body = self.facts.get(name)
            try:
                found = MISSING if body is None else json.loads(body)  # type: ignore[arg-type]
            except (ValueError, RecursionError, TypeError):  # not JSON, or absurdly deep
                found = MISSING
            self._json[name] = found
        return found


_UNPARSED = object()


@frozen
class Condition:
    """One compiled condition. Equal texts compiled for one kind check the same way."""

    text: str
    needs: frozenset[str] = field(eq=False)  # the placeholder names it reads
    check: Callable[[Scope], tuple[bool, str | None, str]] = field(eq=False, repr=False)
    # `[CONNECTED] == false`: a probe that got no connection is what it expects
    expects_no_connection: bool = field(default=False, eq=False)
    # (placeholder, field name or CSS selector) of each FIELDS or ELEMENTS side it reads
    keys: frozenset[tuple[str, str]] = field(eq=False, default=frozenset())


@frozen
class _Ref:
    """A placeholder side: its getter, what its value is, how to show it."""

    written: str
    name: str
    get: Getter
    sort: str
    duration: bool = False
    path: bool = False  # a JSON path or a field name follows the placeholder
    function: str | None = None
    key: str | None = None  # the field name or CSS selector after the placeholder
    body: bool = False  # a BODY-typed placeholder itself ([BODY], [DOM]): len() reads it


@frozen
class _Literal:
    written: str


@frozen
class _Matcher:
    written: str
    function: str  # "pat" or "any"
    argument: str


_Side = _Ref | _Literal | _Matcher


def compile_condition(
    written: str,
    placeholders: Mapping[str, Type],
    *,
    kind: str = "this kind",
    known: Collection[str] = (),
) -> Condition:
    """Parse and type-check `written` for a kind offering `placeholders`; `known`: every
    kind's placeholder names (to tell "not for this kind" from "unknown")."""
    if not isinstance(written, str) or not written.strip():
        raise ConditionError("empty condition (write e.g. [STATUS] == 200)")
    left_text, op, right_text = _split(written)
    sides = [
        _side(part.strip(), where, placeholders, kind, known)
        for part, where in ((left_text, "left of"), (right_text, "right of"))
    ]
    left, right = sides
    refs = [s for s in sides if isinstance(s, _Ref)]
    if not refs:
        raise ConditionError("no placeholder: one side must be one, e.g. [STATUS] or [BODY].status")
    matchers = [s for s in sides if isinstance(s, _Matcher)]
    if matchers and op not in ("==", "!="):
        raise ConditionError(f"{matchers[0].function}() works only with == and !=, not {op}")
    if len(refs) == 2:
        _check_pair(refs[0], refs[1], op)
        test = _comparison(op, refs[0].get, refs[1].get)
    else:
        (ref,) = refs
        other = right if left is ref else left
        if isinstance(other, _Matcher):
            test = _matching(op, ref, other)
        else:
            assert isinstance(other, _Literal)
            value = _literal(ref, other.written, op)
            get_value: Getter = lambda _scope: value  # noqa: E731
            test = (
                _comparison(op, ref.get, get_value)
                if left is ref
                else _comparison(op, get_value, ref.get)
            )
    return Condition(
        text=written,
        needs=frozenset(r.name for r in refs),
        keys=frozenset((r.name, r.key) for r in refs if r.key is not None),
        check=_checker(test, left, op, right),
        expects_no_connection=_expects_no_connection(left, op, right),
    )


def _split(written: str) -> tuple[str, str, str]:
    """The leftmost operator between spaces outside brackets and parentheses."""
    depth = 0
    for i, c in enumerate(written):
        if c in "([":
            depth += 1
        elif c in ")]":
            depth = max(0, depth - 1)
        elif depth == 0 and c in "=!<>" and i and written[i - 1].isspace():
            op = written[i : i + 2] if written[i : i + 2] in _TWO_CHARACTER else c
            end = i + len(op)
            if op in ("==", "!=", "<", ">", "<=", ">=") and (
                end == len(written) or written[end].isspace()
            ):
                return written[:i], op, written[end:]
    raise ConditionError(
        "no comparison: write LEFT OP RIGHT with OP one of == != < <= > >= between spaces"
    )


def _side(
    part: str, where: str, placeholders: Mapping[str, Type], kind: str, known: Collection[str]
) -> _Side:
    if not part:
        raise ConditionError(f"nothing {where} the operator")
    if match := _FUNCTION.fullmatch(part):
        function, inner = match.groups()
        if function in ("pat", "any"):
            return _Matcher(part, function, inner)
        if function in ("len", "has"):
            ref = _side(inner.strip(), where, placeholders, kind, known)
            if not isinstance(ref, _Ref) or ref.function is not None:
                raise ConditionError(
                    f"{function}() takes a placeholder, e.g. {function}([BODY].items)"
                )
            return _function(function, ref, part)
        raise ConditionError(f"unknown function {function}() (there are len, has, pat and any)")
    if match := _PLACEHOLDER.fullmatch(part):
        return _placeholder(part, match[1].upper(), match[2], placeholders, kind, known)
    return _Literal(part)


def _placeholder(
    written: str,
    name: str,
    rest: str,
    placeholders: Mapping[str, Type],
    kind: str,
    known: Collection[str],
) -> _Ref:
    if name in UNSUPPORTED:
        raise ConditionError(f"[{name}] is not supported: {UNSUPPORTED[name]}")
    type_ = placeholders.get(name)
    if type_ is None:
        offered = ", ".join(f"[{n}]" for n in sorted(placeholders)) or "no placeholders"
        if name in known:
            raise ConditionError(f"[{name}] is not offered by {kind} targets (they have {offered})")
        raise ConditionError(f"unknown placeholder [{name}] ({kind} targets have {offered})")
    if type_ is Type.BODY:
        if not rest:
            return _Ref(written, name, lambda scope: scope.body_text(name), ANY, body=True)
        return _Ref(written, name, _json_getter(name, rest), ANY, path=True)
    if type_ is Type.ELEMENTS:
        selector = rest[1:].strip() if rest.startswith(".") else ""
        if not selector:
            raise ConditionError(
                f"[{name}] needs a CSS selector after a dot, e.g. [{name}].h1 or [{name}].#status"
            )
        return _Ref(written, name, _field_getter(name, selector), ANY, path=True, key=selector)
    if type_ is Type.FIELDS:
        field_match = _FIELD_NAME.fullmatch(rest)
        if field_match is None:
            raise ConditionError(
                f"[{name}] needs a name after a dot, e.g. [{name}].{_example(name)}"
            )
        key = field_match[1].lower()
        names = _KNOWN_FIELDS.get(name)
        if names is not None and key not in names:
            raise ConditionError(
                f"[{name}].{key}: no such name (there are {', '.join(sorted(names))})"
            )
        return _Ref(
            written,
            name,
            _field_getter(name, key),
            ANY,
            duration=name in _DURATION_FIELDS,
            path=True,
            key=key,
        )
    if rest:
        raise ConditionError(f"[{name}] takes no path, got {rest!r} after it")
    sort = {Type.NUMBER: NUM, Type.DURATION: NUM, Type.TEXT: TEXT, Type.BOOL: BOOL}[type_]
    return _Ref(written, name, _fact_getter(name), sort, duration=type_ is Type.DURATION)


def _example(name: str) -> str:
    names = _KNOWN_FIELDS.get(name)
    return sorted(names)[0] if names else "content-type"


def _fact_getter(name: str) -> Getter:
    return lambda scope: scope.fact(name)


def _field_getter(name: str, key: str) -> Getter:
    def get(scope: Scope) -> object:
        fields = scope.facts.get(name)
        value = fields.get(key) if isinstance(fields, Mapping) else None
        return MISSING if value is None else value

    return get


def _json_getter(name: str, path_text: str) -> Getter:
    if path_text[0] not in ".[":
        raise ConditionError(
            f"[{name}] is followed by a JSON path like .status or [0], got {path_text!r}"
        )
    import jsonpath  # loaded by a config with a JSON path only (start-up time)

    try:
        path = jsonpath.compile("$" + path_text)
    except (jsonpath.JSONPathError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConditionError(f"invalid JSON path {path_text!r}: {reason}") from None

    def get(scope: Scope) -> object:
        data = scope.body_json(name)
        if data is MISSING:
            return MISSING
        try:
            found = path.findall(data)  # type: ignore[arg-type]
        except jsonpath.JSONPathError:  # e.g. a filter comparing what cannot be compared
            return MISSING
        if not found:
            return MISSING
        return found[0] if len(found) == 1 else found  # several matches: the list of them

    return get


def _function(function: str, ref: _Ref, written: str) -> _Ref:
    inner = ref.get
    if function == "has":
        present = (
            (lambda v: v is not MISSING)
            if ref.path
            else (lambda v: v is not MISSING and text(v) != "")
        )
        return _Ref(
            written,
            ref.name,
            lambda scope: present(inner(scope)),
            BOOL,
            function="has",
            key=ref.key,
        )
    if ref.sort in (BOOL,) or (ref.sort == NUM and ref.duration):
        raise ConditionError(f"len() takes a text, a body or a JSON path, not {ref.written}")
    if ref.body:
        name = ref.name
        return _Ref(written, name, lambda scope: _body_length(scope, name), NUM, function="len")

    def length(scope: Scope) -> object:
        value = inner(scope)
        if value is MISSING:
            return MISSING
        return len(value) if isinstance(value, list | str) else len(text(value))

    return _Ref(written, ref.name, length, NUM, function="len", key=ref.key)


def _body_length(scope: Scope, name: str) -> object:
    """len([BODY]): a JSON array's items, else the body's characters (as Gatus)."""
    data = scope.body_json(name)
    if isinstance(data, list):
        return len(data)
    body = scope.body_text(name)
    return MISSING if body is MISSING else len(body)  # type: ignore[arg-type]


def _check_pair(a: _Ref, b: _Ref, op: str) -> None:
    if op in _ORDERING:
        for ref in (a, b):
            if ref.sort not in (NUM, ANY):
                raise ConditionError(f"{op} compares numbers, and {ref.written} is {ref.sort}")
    elif ANY not in (a.sort, b.sort) and a.sort != b.sort:
        raise ConditionError(f"cannot compare {a.written} ({a.sort}) with {b.written} ({b.sort})")


def _literal(ref: _Ref, written: str, op: str) -> object:
    """The literal side as the value `ref` is compared with, checked now."""
    if op in _ORDERING:
        if ref.sort not in (NUM, ANY):
            raise ConditionError(f"{op} compares numbers, and {ref.written} is {ref.sort}")
        return _number_literal(ref, written)
    if ref.sort == NUM:
        return _number_literal(ref, written)
    if ref.sort == BOOL:
        value = _BOOLS.get(written.lower())
        if value is None:
            raise ConditionError(f"{ref.written} is true or false, got {written!r}")
        return value
    return written


def _number_literal(ref: _Ref, written: str) -> float:
    value = parse_number(written)
    durations = ref.duration or ref.sort == ANY
    if value is None and durations:
        value = parse_duration_ms(written)
    if value is None:
        like = " or a duration like 500ms, 48h" if durations else ""
        raise ConditionError(f"{ref.written} is compared with a number{like}, got {written!r}")
    return value


Test = Callable[[Scope], tuple[bool, object, object]]


def _comparison(op: str, left: Getter, right: Getter) -> Test:
    if op in _ORDERING:
        compare = _ORDERING[op]

        def ordered(scope: Scope) -> tuple[bool, object, object]:
            a, b = left(scope), right(scope)
            na, nb = number(a), number(b)
            return (na is not None and nb is not None and compare(na, nb)), a, b

        return ordered
    want = op == "=="

    def equal(scope: Scope) -> tuple[bool, object, object]:
        a, b = left(scope), right(scope)
        return (a is not MISSING and b is not MISSING and same(a, b) is want), a, b

    return equal


def _matching(op: str, ref: _Ref, matcher: _Matcher) -> Test:
    want = op == "=="
    get = ref.get
    if matcher.function == "pat":
        # Gatus's pat(): shell-style wildcards on the whole value (* any text, ? one
        # character, [abc] one of them)
        match = re.compile(fnmatch.translate(matcher.argument)).match

        def matches(value: object) -> bool:
            return match(text(value)) is not None

    else:
        options = [o.strip() for o in matcher.argument.split(",")]
        if not all(options):
            raise ConditionError(f"any() lists values separated by commas, got {matcher.written!r}")
        values = [_literal(ref, o, "==") for o in options]

        def matches(value: object) -> bool:
            return any(same(value, v) for v in values)

    def test(scope: Scope) -> tuple[bool, object, object]:
        value = get(scope)
        return (value is not MISSING and matches(value) is want), value, MISSING

    return test


def _checker(
    test: Test, left: _Side, op: str, right: _Side
) -> Callable[[Scope], tuple[bool, str | None, str]]:
    """The per-probe check: (ok, actual, the condition with actual values shown); the
    detail only for a failed one ("" else: it is not built for every passing probe)."""
    left_ref = left if isinstance(left, _Ref) else None
    right_ref = right if isinstance(right, _Ref) else None

    def check(scope: Scope) -> tuple[bool, str | None, str]:
        ok, a, b = test(scope)
        if isinstance(left, _Matcher):  # the matcher's test reports its placeholder first
            a, b = b, a
        actual_left = shown(a, left_ref.duration) if left_ref else None
        actual_right = shown(b, right_ref.duration) if right_ref else None
        actual = actual_left if left_ref else actual_right
        if ok:
            return True, actual, ""
        detail = f"{_shown_side(left, actual_left)} {op} {_shown_side(right, actual_right)}"
        return False, actual, detail

    return check


def _shown_side(side: _Side, actual: str | None) -> str:
    if not isinstance(side, _Ref):
        return side.written
    return f"{side.written} ({'missing' if actual is None else _one_line(actual)})"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(text: str) -> str:
    """Control characters escaped (a body's or DNS answers' newlines): error_detail is
    one line, in a log or a terminal."""
    return _CONTROL.sub(lambda m: repr(m[0])[1:-1], text)


def _expects_no_connection(left: _Side, op: str, right: _Side) -> bool:
    """`[CONNECTED] == false` (or `!= true`): no connection is what it asks for."""
    for ref, other in ((left, right), (right, left)):
        if (
            isinstance(ref, _Ref)
            and ref.name == "CONNECTED"
            and ref.function is None
            and isinstance(other, _Literal)
        ):
            return _BOOLS.get(other.written.lower()) is (op == "!=")
    return False
