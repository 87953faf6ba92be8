"""Hourly housekeeping: expired login tokens and old login attempts are deleted."""

from __future__ import annotations

import dramatiq
from periodiq import cron

from widip.deps import deps
from widip.functions import db, identity


@dramatiq.actor(queue_name="ticks", periodic=cron("17 * * * *"), max_retries=0, time_limit=60_000)
def purge_expired_credentials() -> dict:
    with db.transaction(deps().pool) as conn:
        return identity.purge_expired(conn, keep_days=7)
