"""Hourly housekeeping: expired login tokens and old login attempts are deleted."""

from __future__ import annotations

from widip.actors import actor
from widip.deps import deps
from widip.functions import db, identity, job_table


@actor(job_table.PURGE_EXPIRED_CREDENTIALS, max_retries=0, time_limit=60_000)
def purge_expired_credentials() -> dict:
    with db.transaction(deps().pool) as conn:
        return identity.purge_expired(conn, keep_days=7)
