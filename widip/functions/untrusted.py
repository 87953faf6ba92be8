"""Checks on untrusted JSON values (HTTP bodies, tool arguments from a model) before they are stored.

PostgreSQL cannot store a NUL character in text or jsonb, nor a lone UTF-16 surrogate (not valid
UTF-8), and very deep nesting exhausts Python's recursion in the JSON encoder and in jsonschema.
`problem` names the first such defect so callers answer 400; `scrub` makes a value storable anyway,
for the audit row that records the refusal. `check` is the one JSON Schema validation, for HTTP
bodies and tool arguments alike.
"""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator, validators

from widip.errors import Invalid

#: Deepest nesting accepted; real bodies and tool arguments stay under 6.
MAX_DEPTH = 32
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _is_integer(checker, value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: JSON Schema 2020-12, except that `2.0` is not an integer: a level or an id sent as a float is a
#: client bug to report (400), not a value to store.
StrictValidator = validators.extend(
    Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))


def check(value: Any, schema: dict, what: str = "body", *, within: str = "") -> None:
    """Raise Invalid naming the first place `value` breaks `schema` ("path: message"; `what` when the
    problem is the value as a whole; `within`, e.g. "row 3", names the item of a list being checked)."""
    errors = sorted(StrictValidator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or what
        raise Invalid(f"{within}: {where}: {first.message}" if within else f"{where}: {first.message}")


def may_decode_unstorable(raw: bytes) -> bool:
    """Whether JSON text can decode to a NUL or a lone surrogate: in UTF-8, only through a \\u escape
    or a byte that starts an encoded surrogate (json.loads decodes bytes with 'surrogatepass'); UTF-16
    and UTF-32 texts (which json.loads also accepts) hold NUL bytes. When it cannot,
    `problem(..., strings=False)` skips scanning every string of the body."""
    return b"\\u" in raw or b"\xed" in raw or b"\x00" in raw


def problem(value: Any, *, max_depth: int = MAX_DEPTH, strings: bool = True) -> str | None:
    """Why `value` cannot be accepted (too deep, NUL byte, lone surrogate), naming where; or None.
    Iterative, so hostile depth cannot exhaust the stack here. `strings=False`: only the depth."""
    stack = [(value, 1, "")]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            children = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
            for key, child in children:
                path = f"{where}/{key}" if where else str(key)
                if strings and isinstance(key, str) and _UNSTORABLE.search(key):
                    return f"{path[:80]!r}: a key contains a NUL character or an invalid Unicode surrogate"
                stack.append((child, depth + 1, path))
        elif strings and isinstance(item, str) and _UNSTORABLE.search(item):
            return f"{where[:80] or 'value'}: contains a NUL character or an invalid Unicode surrogate"
    return None


def scrub(value: Any, *, max_depth: int = MAX_DEPTH, _depth: int = 1) -> Any:
    """A storable copy: unstorable characters replaced by U+FFFD, nesting cut at `max_depth`."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, (dict, list)) and _depth > max_depth:
        return "[trop profond]"
    if isinstance(value, dict):
        return {scrub(k): scrub(v, max_depth=max_depth, _depth=_depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, max_depth=max_depth, _depth=_depth + 1) for v in value]
    return value
