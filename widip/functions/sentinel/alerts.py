"""Observium webhook bodies: validate, persist before answering, and find the ones no job took.

Observium's `webhook` and `webhook-json` transports post every message tag as a JSON object of
strings (docs/integrations.md; `null` for empty tags via plain `webhook`). We require only what an
alert cannot do without — ALERT_ID, a state (ALERT_STATE, else the unambiguous ALERT_STATUS: 0 failed,
1 ok) and a device (DEVICE_ID or DEVICE_HOSTNAME) — and keep everything else verbatim, unknown tags
included, however long: a huge CONDITIONS is persisted raw, only the excerpts we write are bounded.

Idempotency: Observium re-sends the same notification (fallback URL, our own retries) and repeats
`ALERT REMINDER` every interval. The key is ALERT_ID + ALERT_STATE + the notification time
(ALERT_UNIXTIME, else ALERT_TIMESTAMP*, else a digest of the whole body), so a re-sent body is the
same row while a reminder is a new one. The tracking id is derived from that key, so answering a
re-sent body needs no extra read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from psycopg import Connection

from widip.errors import Invalid
from widip.functions import clock, job_table
from widip.functions.db import Jsonb, transaction
from widip.functions.sentinel.inventory import parse_location

logger = logging.getLogger(__name__)

#: ALERT_STATUS (Observium's alert_status) → the state it unambiguously means.
STATUS_STATES = {"0": "ALERT", "FAILED": "ALERT", "1": "RECOVER", "OK": "RECOVER"}
TIME_FIELDS = ("ALERT_UNIXTIME", "ALERT_TIMESTAMP_RFC3339", "ALERT_TIMESTAMP", "ALERT_TIMESTAMP_RFC2822")
RECOVERY_STATES = ("RECOVER", "RECOVERY", "RECOVERED", "OK")
#: A normalised condition longer than this is cut (it is part of the de-duplication key and of texts).
MAX_CONDITION_CHARS = 500
#: Alerts never handed to the broker (enqueued_at cleared after a failed send) are re-sent after this long.
LOST_AFTER_SECONDS = 10
#: A message taken but still unprocessed after this long is presumed lost (worker killed mid-flight).
STALE_AFTER_SECONDS = 900
_PHIBEE_REF = re.compile(r"\b((?:FTTH|FTTB|FTTE|ADSL|VDSL|SDSL)-[A-Z0-9]+-\d{3,})\b", re.IGNORECASE)
_CONDITION_VALUE = re.compile(r"\s*\([^()]*\)\s*$")


@dataclass(frozen=True)
class AlertFacts:
    """What the pipeline needs from one webhook body, normalised (all strings stripped, None if empty)."""

    alert_id: str
    state: str
    recovery: bool
    device_id: str | None
    hostname: str
    entity_type: str
    entity_id: str | None
    entity_name: str | None
    condition: str
    location: str | None
    site: str | None
    client: str | None
    description: str | None
    device_type: str | None
    status_type: str | None
    line_reference: str | None
    operator: str | None
    title: str | None

    @property
    def member_key(self) -> str:
        """device × entity × condition: what "the same alert" means for de-duplication."""
        device = self.device_id or self.hostname.lower()
        return f"{device}|{self.entity_type}:{self.entity_id or device}|{self.condition}"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def validate(body) -> dict:
    """The body if it is an alert; Invalid naming the first missing or malformed field otherwise."""
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object of Observium message tags")
    if _text(body.get("ALERT_ID")) is None:
        raise Invalid("ALERT_ID is missing: this is not an Observium alert")
    if state_of(body) is None:
        raise Invalid("ALERT_STATE is missing (and no ALERT_STATUS 0 or 1): this is not an Observium alert")
    if _text(body.get("DEVICE_ID")) is None and _text(body.get("DEVICE_HOSTNAME")) is None:
        raise Invalid("DEVICE_HOSTNAME is missing (and no DEVICE_ID): the alert names no device")
    for name, value in body.items():
        if isinstance(value, (dict, list)) and name not in ("ENTITY_GROUPS", "DEVICE_GROUPS"):
            raise Invalid(f"{name} must be a string")
    return body


def state_of(body: dict) -> str | None:
    """ALERT_STATE upper-cased, else what ALERT_STATUS means (None when neither says)."""
    state = _text(body.get("ALERT_STATE"))
    if state:
        return state.upper()
    return STATUS_STATES.get((_text(body.get("ALERT_STATUS")) or "").upper())


def dedup_key(body: dict) -> str:
    moment = next((_text(body.get(f)) for f in TIME_FIELDS if _text(body.get(f))), None)
    if moment is None:
        moment = "body:" + hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    raw = f"{_text(body['ALERT_ID'])}|{state_of(body)}|{moment}"
    return hashlib.sha256(raw.encode()).hexdigest()


def tracking_id(key: str, received: datetime) -> str:
    """ALT-<day>-<10 hex of the key>: the same body always gets the same id (40 bits: no clash in a day)."""
    return f"ALT-{received:%Y%m%d}-{key[:10].upper()}"


def accept(conn: Connection, body: dict, *, now: datetime | None = None,
           claim: bool = False) -> tuple[int | None, str]:
    """Persist a validated body; return (row id, tracking id). Row id is None for an already-known body.

    One INSERT … ON CONFLICT DO NOTHING, committed by the caller before answering. With `claim` the
    row is also marked as being handed to the broker (`enqueued_at`), in the same statement: the
    caller then sends it right after the commit (`hand_to_broker`) and clears the mark if that fails.
    """
    key = dedup_key(body)
    received = now or clock.now()
    row = conn.execute(
        "INSERT INTO alerts (tracking_id, dedup_key, alert_id, alert_state, device_id, hostname, body, received_at, "
        "enqueued_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (dedup_key) DO NOTHING "
        "RETURNING id, tracking_id",
        (tracking_id(key, received), key, _text(body["ALERT_ID"]), state_of(body),
         _text(body.get("DEVICE_ID")), _text(body.get("DEVICE_HOSTNAME")), Jsonb(body), received,
         received if claim else None)).fetchone()
    if row is not None:
        return row["id"], row["tracking_id"]
    existing = conn.execute("SELECT id, tracking_id, enqueued_at FROM alerts WHERE dedup_key = %s", (key,)).fetchone()
    # An already-known body whose first enqueue failed is handed back so the caller can try again.
    if existing["enqueued_at"] is not None:
        return None, existing["tracking_id"]
    if claim:
        mark_enqueued(conn, [existing["id"]])
    return existing["id"], existing["tracking_id"]


def mark_enqueued(conn: Connection, alert_ids: list[int]) -> None:
    conn.execute("UPDATE alerts SET enqueued_at = %s WHERE id = ANY(%s)", (clock.now(), list(alert_ids)))


def hand_to_broker(pool, alert_id: int, send: Callable[..., object]) -> bool:
    """Send an alert already marked enqueued (`accept(claim=True)`, `claim_lost`) to `process_alert`;
    False (nothing raised) when the broker is unreachable: the mark is cleared, so the minute sweep
    sends it later. A process killed between the commit and the send leaves a marked alert that
    nothing took; the sweep sends it once it is STALE_AFTER_SECONDS old."""
    try:
        send(job_table.PROCESS_ALERT, alert_id)
        return True
    except Exception as exc:  # noqa: BLE001 - the alert is persisted; the sweeper sends it later
        logger.warning("alert %s persisted but not enqueued (%s); the sweeper will send it", alert_id,
                       type(exc).__name__)
    with transaction(pool) as conn:
        conn.execute("UPDATE alerts SET enqueued_at = NULL WHERE id = %s AND status = 'received'", (alert_id,))
    return False


def hand_all_to_broker(pool, alert_ids: list[int], send: Callable[..., object]) -> int:
    """Send claimed alerts in order; at the first failure the broker is unreachable, so the rest are
    released at once (re-sent by the next sweep) rather than left claimed for STALE_AFTER_SECONDS."""
    for done, alert_id in enumerate(alert_ids):
        if not hand_to_broker(pool, alert_id, send):
            with transaction(pool) as conn:
                conn.execute("UPDATE alerts SET enqueued_at = NULL WHERE id = ANY(%s) AND status = 'received'",
                              (list(alert_ids[done + 1:]),))
            return done
    return len(alert_ids)


def claim_lost(conn: Connection, *, limit: int = 500) -> list[int]:
    """Mark and return accepted alerts no job is working on: never enqueued (Redis was down), or taken
    long ago and not done. Rows another sweeper is claiming are skipped."""
    now = clock.now()
    rows = conn.execute(
        "UPDATE alerts SET enqueued_at = %s WHERE id IN (SELECT id FROM alerts WHERE status = 'received' AND ("
        "(enqueued_at IS NULL AND received_at < %s - make_interval(secs => %s)) OR "
        "enqueued_at < %s - make_interval(secs => %s)) ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id",
        (now, now, LOST_AFTER_SECONDS, now, STALE_AFTER_SECONDS, limit)).fetchall()
    return sorted(r["id"] for r in rows)


def facts(body: dict) -> AlertFacts:
    """Normalise a stored body into AlertFacts (site and client derived like ObserviumClient does)."""
    state = state_of(body) or ""
    status = _text(body.get("ALERT_STATUS"))
    hostname = _text(body.get("DEVICE_HOSTNAME")) or _text(body.get("ENTITY_NAME")) or f"device-{body.get('DEVICE_ID')}"
    location = _text(body.get("DEVICE_LOCATION"))
    site, _room, client = parse_location(location)
    description = _text(body.get("DEVICE_DESCRIPTION")) or _text(body.get("ENTITY_DESCRIPTION"))
    reference = _PHIBEE_REF.search(" ".join(filter(None, (description, _text(body.get("DEVICE_SYSNAME"))))))
    uptime = (_text(body.get("DEVICE_UPTIME")) or "").lower()
    status_type = next((kind for kind in ("ping", "snmp", "dns") if f"({kind})" in uptime), None)
    return AlertFacts(
        alert_id=_text(body.get("ALERT_ID")) or "", state=state,
        recovery=state in RECOVERY_STATES or state.startswith("RECOVER") or status == "1",
        device_id=_text(body.get("DEVICE_ID")), hostname=hostname,
        entity_type=(_text(body.get("ENTITY_TYPE")) or "device").lower(), entity_id=_text(body.get("ENTITY_ID")),
        entity_name=_text(body.get("ENTITY_NAME")), condition=normalise_condition(body.get("CONDITIONS")),
        location=location, site=site, client=client, description=description,
        device_type=_text(body.get("DEVICE_TYPE")), status_type=status_type,
        line_reference=reference.group(1).upper() if reference else None,
        operator="phibee" if (reference or "phibee" in (description or "").lower()) else None,
        title=_text(body.get("TITLE")))


def normalise_condition(value) -> str:
    """"device_status equals 0 (0)" → "device_status equals 0": the observed value is not the condition."""
    lines = [_CONDITION_VALUE.sub("", line).strip() for line in str(value or "").splitlines()]
    return (" & ".join(line for line in lines if line) or "-")[:MAX_CONDITION_CHARS]


def _text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
