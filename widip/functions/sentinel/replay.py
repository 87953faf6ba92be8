"""`widip sentinel replay FILE.jsonl [--speed N]`: recorded Observium deliveries, re-sent with their timing.

Ops try a rule change on last week's alerts by replaying them against a test deployment. One JSON
object per line: {"at": <unix seconds or ISO 8601>, "body": {Observium tags}} (a bare body is
accepted too: its ALERT_UNIXTIME is its time). Deliveries keep their relative timing divided by
`speed`. Each body's notification time is rewritten to the moment it is sent, so a replay is new to
the deployment (its de-duplication would otherwise drop what it already saw) — unless `keep_times`.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path

from widip.errors import Invalid

MAX_DELIVERIES = 100_000


def load(path: str | Path) -> list[tuple[float, dict]]:
    """(seconds since the first delivery, body), in time order; Invalid naming the first bad line."""
    entries = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise Invalid(f"line {number}: not JSON") from None
        body = item.get("body", item) if isinstance(item, dict) else None
        if not isinstance(body, dict):
            raise Invalid(f"line {number}: expected an object with a `body`")
        entries.append((_seconds(item.get("at", body.get("ALERT_UNIXTIME")), number), body))
        if len(entries) > MAX_DELIVERIES:
            raise Invalid(f"more than {MAX_DELIVERIES} deliveries")
    entries.sort(key=lambda e: e[0])
    start = entries[0][0] if entries else 0.0
    return [(at - start, body) for at, body in entries]


def restamp(body: dict, moment: float) -> dict:
    """The body as if Observium sent it at `moment` (unix seconds)."""
    when = datetime.fromtimestamp(moment, timezone.utc)
    out = dict(body)
    out["ALERT_UNIXTIME"] = str(int(moment))
    for name, value in (("ALERT_TIMESTAMP", when.strftime("%Y-%m-%d %H:%M:%S")),
                        ("ALERT_TIMESTAMP_RFC3339", when.isoformat()),
                        ("ALERT_TIMESTAMP_RFC2822", format_datetime(when))):
        if name in out:
            out[name] = value
    return out


def replay_file(path, *, url: str, token: str, speed: float = 1.0, keep_times: bool = False, client=None,
                sleep=time.sleep) -> dict:
    """Post every delivery at its (compressed) time; counts per HTTP status and the errors seen."""
    import httpx

    if speed <= 0:
        raise Invalid("--speed must be positive")
    deliveries = load(path)
    own = client is None
    client = client or httpx.Client(timeout=15)
    statuses: dict[str, int] = {}
    errors: list[str] = []
    started = time.monotonic()
    try:
        for offset, body in deliveries:
            wait = offset / speed - (time.monotonic() - started)
            if wait > 0:
                sleep(wait)
            sent = body if keep_times else restamp(body, time.time())
            try:
                answer = client.post(url, json=sent, headers={"Authorization": token} if token else {})
                statuses[str(answer.status_code)] = statuses.get(str(answer.status_code), 0) + 1
                if answer.status_code >= 400:
                    errors.append(f"{body.get('ALERT_ID')}: {answer.status_code} {answer.text[:200]}")
            except httpx.HTTPError as exc:
                statuses["unreachable"] = statuses.get("unreachable", 0) + 1
                errors.append(f"{body.get('ALERT_ID')}: {type(exc).__name__}")
    finally:
        if own:
            client.close()
    return {"deliveries": len(deliveries), "statuses": statuses, "errors": errors[:20],
            "seconds": round(time.monotonic() - started, 2)}


def _seconds(value, number: int) -> float:
    if value is None:
        raise Invalid(f"line {number}: no `at` and no ALERT_UNIXTIME")
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"line {number}: `at` must be unix seconds or ISO 8601") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
