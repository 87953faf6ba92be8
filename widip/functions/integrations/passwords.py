"""Strong temporary passwords for AD resets, drawn from the `secrets` CSPRNG.

The password is typed by a care worker from a one-time link, so the alphabet leaves out characters
that are easy to misread (0/O/o, 1/l/I, |) or awkward on French keyboards and in URLs (quotes,
backslash, backtick, spaces). Every password meets AD complexity (upper, lower, digit, symbol) and
never contains the account name, which AD would refuse with `0000052D`.
"""

from __future__ import annotations

import secrets

UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
LOWER = "abcdefghijkmnpqrstuvwxyz"
DIGITS = "23456789"
SYMBOLS = "!#%+-=?@_*"
ALPHABET = UPPER + LOWER + DIGITS + SYMBOLS
MIN_LENGTH = 16
DEFAULT_LENGTH = 20


def generate_password(length: int = DEFAULT_LENGTH, *, avoid: tuple[str, ...] = ()) -> str:
    """A random password of `length` (≥ 16) with all four character classes, containing none of `avoid`.

    `avoid` holds the account name and display-name parts: AD rejects passwords containing them
    (case-insensitive, for tokens of three characters or more).
    """
    if length < MIN_LENGTH:
        raise ValueError(f"password length must be at least {MIN_LENGTH}")
    forbidden = [word.lower() for word in avoid if word and len(word) >= 3]
    rng = secrets.SystemRandom()
    while True:
        chars = [secrets.choice(UPPER), secrets.choice(LOWER), secrets.choice(DIGITS), secrets.choice(SYMBOLS)]
        chars += [secrets.choice(ALPHABET) for _ in range(length - len(chars))]
        rng.shuffle(chars)
        password = "".join(chars)
        if not any(word in password.lower() for word in forbidden):
            return password


def meets_complexity(password: str, *, avoid: tuple[str, ...] = ()) -> bool:
    """True when `password` satisfies the rules `generate_password` guarantees (used by tests and checks)."""
    classes = (any(c in UPPER for c in password), any(c in LOWER for c in password),
               any(c in DIGITS for c in password), any(c in SYMBOLS for c in password))
    lowered = password.lower()
    return (len(password) >= MIN_LENGTH and all(classes)
            and all(c in ALPHABET for c in password)
            and not any(word.lower() in lowered for word in avoid if word and len(word) >= 3))
