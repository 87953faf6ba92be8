"""SAFEGUARD: the one gate deciding whether a tool call runs, and everything around it.

    policy.py    levels from policy/safeguard.toml, live in table safeguard_config
    gate.py      decide(level, caller, confidence, policy) — the only place that decides
    audit.py     the append-only trail, argument hashing and redaction
    calls.py     propose a call, approve / reject / expire requests
    deferred.py  L4: human-only actions scheduled 24–48 h ahead
"""
