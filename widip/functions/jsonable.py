"""The one conversion of our values to JSON: datetimes, UUIDs, decimals and records we write as JSON.

Used for read models and tool results (`json_safe`) and by the HTTP JSON handler (`json_default`,
the `default=` hook of `json.dumps`), so a value reads the same in the API, the database and a tool
result. It does not parse anything: lenient reading of external JSON is `coerce.py`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID


def json_default(value: Any) -> Any:
    """The JSON form of one value `json` cannot write; TypeError for anything else (as json does)."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def json_safe(value: Any) -> Any:
    """`value` with every part converted by `json_default`, recursively; tuples become lists."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float)):
        return value
    try:
        return json_safe(json_default(value))
    except TypeError:
        return value
