"""LDAP search-filter matching for the AD stand-in, including AD's bitwise and in-chain matching rules.

ldaptor's own matcher breaks on Python 3 for substrings and ordering and knows none of AD's matching
rules (`1.2.840.113556.1.4.803` bit-and, `.804` bit-or, `.1941` transitive membership), so filters
decoded by ldaptor are evaluated here against an attribute getter.
"""

from __future__ import annotations

from typing import Callable

from ldaptor.protocols import pureldap

BIT_AND = "1.2.840.113556.1.4.803"
BIT_OR = "1.2.840.113556.1.4.804"
IN_CHAIN = "1.2.840.113556.1.4.1941"

#: getter(attribute_name) -> values as text; chain(attribute_name, dn) -> True when dn is reachable transitively.
Getter = Callable[[str], list[str]]
Chain = Callable[[str, str], bool]


class UnsupportedFilter(Exception):
    """Raised for a filter element the stand-in does not implement (answered as unwillingToPerform)."""


def _str(obj) -> str:
    """Text of a decoded BER value (ldaptor hands out bytes, or objects with a `.value`)."""
    raw = getattr(obj, "value", obj)
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _as_int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _compare(values: list[str], wanted: str, op: str) -> bool:
    for value in values:
        a, b = _as_int(value), _as_int(wanted)
        if a is None or b is None:
            a, b = value.lower(), wanted.lower()
        if (op == ">=" and a >= b) or (op == "<=" and a <= b):
            return True
    return False


def _substrings(values: list[str], parts) -> bool:
    initial, final, middle = None, None, []
    for part in parts:
        text = _str(part).lower()
        if isinstance(part, pureldap.LDAPFilter_substrings_initial):
            initial = text
        elif isinstance(part, pureldap.LDAPFilter_substrings_final):
            final = text
        else:
            middle.append(text)
    for value in values:
        value = value.lower()
        position = 0
        if initial is not None:
            if not value.startswith(initial):
                continue
            position = len(initial)
        ok = True
        for piece in middle:
            found = value.find(piece, position)
            if found < 0:
                ok = False
                break
            position = found + len(piece)
        if ok and (final is None or (value.endswith(final) and len(value) - len(final) >= position)):
            return True
    return False


def _extensible(flt, get: Getter, chain: Chain) -> bool:
    rule = _str(flt.matchingRule) if flt.matchingRule is not None else ""
    if flt.type is None:
        raise UnsupportedFilter("extensible match without an attribute")
    attribute, wanted = _str(flt.type), _str(flt.matchValue)
    if rule in (BIT_AND, BIT_OR):
        mask = _as_int(wanted)
        if mask is None:
            return False
        for value in get(attribute):
            number = _as_int(value)
            if number is not None and ((number & mask) == mask if rule == BIT_AND else number & mask):
                return True
        return False
    if rule == IN_CHAIN:
        return chain(attribute, wanted)
    if rule == "":
        return wanted.lower() in (v.lower() for v in get(attribute))
    raise UnsupportedFilter(f"matching rule {rule} not supported")


def matches(flt, get: Getter, chain: Chain) -> bool:
    """True when the entry seen through `get` satisfies the decoded filter `flt`."""
    if isinstance(flt, pureldap.LDAPFilter_and):
        return all(matches(f, get, chain) for f in flt)
    if isinstance(flt, pureldap.LDAPFilter_or):
        return any(matches(f, get, chain) for f in flt)
    if isinstance(flt, pureldap.LDAPFilter_not):
        return not matches(flt.value, get, chain)
    if isinstance(flt, pureldap.LDAPFilter_present):
        return bool(get(_str(flt)))
    if isinstance(flt, pureldap.LDAPFilter_substrings):
        return _substrings(get(_str(flt.type)), flt.substrings)
    if isinstance(flt, pureldap.LDAPFilter_extensibleMatch):
        return _extensible(flt, get, chain)
    if isinstance(flt, (pureldap.LDAPFilter_equalityMatch, pureldap.LDAPFilter_approxMatch)):
        wanted = _str(flt.assertionValue).lower()
        return any(v.lower() == wanted for v in get(_str(flt.attributeDesc)))
    if isinstance(flt, pureldap.LDAPFilter_greaterOrEqual):
        return _compare(get(_str(flt.attributeDesc)), _str(flt.assertionValue), ">=")
    if isinstance(flt, pureldap.LDAPFilter_lessOrEqual):
        return _compare(get(_str(flt.attributeDesc)), _str(flt.assertionValue), "<=")
    raise UnsupportedFilter(f"filter {type(flt).__name__} not supported")
