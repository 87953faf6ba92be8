"""Documentation and conversation actors: ingest an upload, re-embed after a model change, retention."""

from __future__ import annotations

import base64

from widip.actors import actor
from widip.deps import deps
from widip.functions import db, job_table
from widip.functions.docs import ingest
from widip.functions.docs.embedding import embedder_for
from widip.functions.wibot import conversations
from widip.errors import Invalid


@actor(job_table.INGEST_DOCUMENT, max_retries=3, time_limit=600_000, throws=(Invalid,))
def ingest_document(source: str, content_base64: str, fmt: str, doc_class: str, client: str | None,
                    title: str | None, ingested_by: str) -> dict:
    """Embed and index an uploaded document (in the worker: the embedding model never loads in web)."""
    d = deps()
    with db.transaction(d.pool) as conn:
        outcome = ingest.ingest_bytes(conn, source=source, raw=base64.b64decode(content_base64), fmt=fmt,
                                      embedder=embedder_for(d.settings), doc_class=doc_class, client=client,
                                      actor=ingested_by, title=title, fallback_title=source.split(":", 1)[-1])
    document = outcome["document"]
    return {"status": outcome["status"], "document_id": document["id"], "chunks": document["chunk_count"]}


@actor(job_table.REEMBED_DOCUMENTS, max_retries=0, time_limit=300_000)
def reembed_documents() -> int:
    """Every 10 min: re-embed passages made by another model than the configured one, a batch at a time."""
    d = deps()
    done = 0
    for _ in range(20):
        with db.transaction(d.pool) as conn:
            count = ingest.reembed_stale(conn, embedder_for(d.settings))
        done += count
        if not count:
            break
    return done


@actor(job_table.PURGE_CONVERSATIONS, max_retries=0, time_limit=120_000)
def purge_conversations() -> int:
    """Daily: delete conversations idle longer than CONVERSATION_RETENTION_DAYS (GDPR)."""
    d = deps()
    with db.transaction(d.pool) as conn:
        return conversations.purge_expired(conn, d.settings.conversation_retention_days)
