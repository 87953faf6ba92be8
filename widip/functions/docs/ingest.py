"""Ingestion: a document's chunks, embedded and indexed, replaced in one transaction.

Idempotent by checksum (raw bytes, class and client): re-ingesting an unchanged file does nothing;
a changed one replaces its chunks atomically, so a search never sees half a document. Embeddings
are computed before the transaction so it stays short. The embedding model is not in the checksum:
after a model change the chunks are re-embedded in the background (`reembed_stale`), and an
unchanged file stays unchanged before and after.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Callable

from psycopg import Connection

from widip.config import PROJECT_ROOT
from widip.errors import Invalid, NotFound
from widip.functions.docs.chunking import FORMATS, Chunk, chunk, format_for, title_of, to_markdown
from widip.functions.docs.embedding import Embedder

logger = logging.getLogger(__name__)

CLASSES = ("public", "contrats", "confidential")
#: Chunks embedded per call (bounded memory, visible progress).
EMBED_BATCH = 64
Progress = Callable[[int, int], None]


def vector_literal(vector) -> str:
    return "[" + ",".join(f"{x:.6g}" for x in vector) + "]"


def citation_for(document_id: int, heading: str, text: str) -> str:
    """Stable as long as the passage is unchanged: "doc12-3f2a9c1b"."""
    return f"doc{document_id}-" + hashlib.sha256(f"{heading}\n{text}".encode()).hexdigest()[:8]


def source_of(path: Path) -> str:
    """A file's source name: relative to the project when inside it (same on every machine)."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(resolved)


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given, and the supported files under each folder (sorted: stable ingestion order)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and _supported(p.name)))
        elif path.is_file():
            files.append(path)
        else:
            raise NotFound(f"{path}: no such file or folder")
    return files


def _supported(name: str) -> bool:
    try:
        format_for(name)
        return True
    except Invalid:
        return False


def ingest_tree(conn: Connection, paths: list[Path], embedder: Embedder, *, actor: str) -> dict:
    """Ingest every supported file under `paths` as public documentation; counts by outcome.

    A bulk load ends with ANALYZE: until autovacuum gets to it the planner would think the tables
    nearly empty, and rank vectors by sorting every chunk instead of using the HNSW index, and
    full-text search would treat every word as rare.
    """
    counts: dict[str, int] = {}
    for path in expand_paths(paths):
        status = ingest_path(conn, path, embedder, actor=actor)["status"]
        counts[status] = counts.get(status, 0) + 1
    if set(counts) - {"unchanged"}:
        analyze(conn)
    return counts


def analyze(conn: Connection) -> None:
    """Refresh the planner's statistics on the documentation tables."""
    conn.execute("ANALYZE documents, chunks")


def ingest_path(conn: Connection, path: Path, embedder: Embedder, *, doc_class: str = "public",
                client: str | None = None, actor: str = "cli", progress: Progress | None = None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path}: no such file")
    return ingest_bytes(conn, source=source_of(path), raw=path.read_bytes(), fmt=format_for(path.name),
                        embedder=embedder, doc_class=doc_class, client=client, actor=actor, progress=progress,
                        fallback_title=path.stem.replace("-", " ").replace("_", " "))


def ingest_bytes(conn: Connection, *, source: str, raw: bytes, fmt: str, embedder: Embedder,
                 doc_class: str = "public", client: str | None = None, actor: str, title: str | None = None,
                 fallback_title: str | None = None, progress: Progress | None = None) -> dict:
    """Ingest one document; returns {"status": "unchanged"|"created"|"replaced", "document": {...}}."""
    if doc_class not in CLASSES:
        raise Invalid(f"class must be one of {', '.join(CLASSES)}")
    if fmt not in FORMATS:
        raise Invalid(f"format must be one of {', '.join(FORMATS)}")
    client = (client or "").strip() or None
    checksum = hashlib.sha256(b"\0".join([raw, doc_class.encode(), (client or "").encode()])).hexdigest()
    existing = conn.execute("SELECT * FROM documents WHERE source = %s", (source,)).fetchone()
    if existing and existing["checksum"] == checksum:
        return {"status": "unchanged", "document": existing}
    markdown = to_markdown(raw, fmt)
    chunks = chunk(markdown)
    if not chunks:
        raise Invalid(f"{source}: no text to index")
    title = (title or title_of(markdown, fallback_title or source)).strip()
    vectors = _embed(embedder, title, chunks, progress)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('widip:doc:' || %s))", (source,))
        document = conn.execute(
            "INSERT INTO documents (title, source, class, client, format, checksum, chunk_count, ingested_by) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (source) DO UPDATE SET title = EXCLUDED.title, "
            "class = EXCLUDED.class, client = EXCLUDED.client, format = EXCLUDED.format, "
            "checksum = EXCLUDED.checksum, chunk_count = EXCLUDED.chunk_count, "
            "ingested_by = EXCLUDED.ingested_by, ingested_at = now() RETURNING *",
            (title, source, doc_class, client, fmt, checksum, len(chunks), actor)).fetchone()
        # A new dimension's index is built before this transaction writes to chunks: CREATE INDEX
        # waits for writers, so a writer already holding chunks while queueing for it would deadlock.
        ensure_vector_index(conn, len(vectors[0]) if vectors else embedder.dimension)
        conn.execute("DELETE FROM chunks WHERE document_id = %s", (document["id"],))
        insert_chunks(conn, document["id"], chunks, vectors, embedder)
    logger.info("ingested %s (%d chunks, %s) by %s", source, len(chunks), embedder.model, actor)
    return {"status": "replaced" if existing else "created", "document": document}


def _embed(embedder: Embedder, title: str, chunks: list[Chunk], progress: Progress | None) -> list[list[float]]:
    vectors: list[list[float]] = []
    for start in range(0, len(chunks), EMBED_BATCH):
        batch = chunks[start:start + EMBED_BATCH]
        vectors.extend(embedder.embed([embedding_text(title, c.heading, c.text) for c in batch]))
        if progress:
            progress(len(vectors), len(chunks))
    return vectors


def embedding_text(title: str, heading: str, text: str) -> str:
    """What gets embedded: the passage with where it sits (a heading often names the topic; the
    heading path already starts with the title when the document has one)."""
    return f"{heading}. {text}" if heading else f"{title}. {text}"


def insert_chunks(conn: Connection, document_id: int, chunks: list[Chunk], vectors, embedder: Embedder) -> None:
    """COPY the chunks in (several times faster than row inserts with the indexes live); the index of
    their dimension exists already (ingest_bytes makes sure of it before writing)."""
    dimension = len(vectors[0]) if vectors else embedder.dimension
    with conn.cursor() as cur, cur.copy("COPY chunks (document_id, position, heading, text, citation, embedding, "
                                        "embedding_model, embedding_dim) FROM STDIN") as copy:
        for c, v in zip(chunks, vectors):
            copy.write_row((document_id, c.position, c.heading, c.text, citation_for(document_id, c.heading, c.text),
                            vector_literal(v), embedder.model, dimension))


#: Chunks embedded by another model than %(model)s; two ranges rather than `IS DISTINCT FROM` so the
#: (embedding_model, embedding_dim) index answers "is any chunk stale?" without reading the table.
STALE = "(c.embedding_model < %(model)s OR c.embedding_model > %(model)s OR c.embedding_model IS NULL)"
#: pgvector indexes `vector` columns of at most this many dimensions.
HNSW_MAX_DIMENSIONS = 2000


def has_stale(conn: Connection, model: str) -> bool:
    """Whether some chunk is still embedded by another model than `model` (a re-embed is under way).

    Never a prepared statement: PostgreSQL's generic plan for it cannot see that no row matches and
    scans every chunk (33 ms at 100,000, on every search); planned with the model, it takes the index.
    """
    return conn.execute(f"SELECT EXISTS (SELECT 1 FROM chunks c WHERE {STALE}) AS stale",
                        {"model": model}, prepare=False).fetchone()["stale"]


def ensure_vector_index(conn: Connection, dimension: int) -> None:
    """The partial HNSW index of chunks of `dimension` (pgvector indexes a fixed dimension only).

    sql/ creates those of the default embedders (300, 768); a model of another dimension gets its
    own on first use, while it has no chunk yet, so the index build costs nothing.
    """
    name = f"chunks_hnsw_{int(dimension)}"
    if not 0 < dimension <= HNSW_MAX_DIMENSIONS or conn.execute("SELECT to_regclass(%s) IS NOT NULL AS known",
                                                                 (name,)).fetchone()["known"]:
        return
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('widip:docs:hnsw'))")
    conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON chunks USING hnsw ((embedding::vector({int(dimension)})) "
                 f"vector_cosine_ops) WHERE embedding_dim = {int(dimension)}")
    logger.info("created the HNSW index %s", name)


def reembed_stale(conn: Connection, embedder: Embedder, *, limit: int = 256) -> int:
    """Re-embed up to `limit` chunks made by another model (after OLLAMA_EMBED_MODEL changed).

    A query's vector is only compared with vectors of its own model and dimension; while some
    chunks are stale, hybrid search ranks by full text alone (see search.search).
    """
    rows = conn.execute(
        "SELECT c.id, c.heading, c.text, d.title FROM chunks c JOIN documents d ON d.id = c.document_id "
        f"WHERE {STALE} ORDER BY c.id LIMIT %(limit)s FOR UPDATE OF c SKIP LOCKED",
        {"model": embedder.model, "limit": limit}).fetchall()
    if not rows:
        return 0
    vectors = embedder.embed([embedding_text(r["title"], r["heading"], r["text"]) for r in rows])
    ensure_vector_index(conn, len(vectors[0]))
    with conn.cursor() as cur:
        cur.executemany("UPDATE chunks SET embedding = %s::vector, embedding_model = %s, embedding_dim = %s "
                        "WHERE id = %s",
                        [(vector_literal(v), embedder.model, len(v), r["id"]) for r, v in zip(rows, vectors)])
    logger.info("re-embedded %d chunks with %s", len(rows), embedder.model)
    return len(rows)


def list_documents(conn: Connection, *, limit: int = 200) -> list[dict]:
    return conn.execute("SELECT id, title, source, class, client, format, checksum, chunk_count, ingested_by, "
                        "ingested_at FROM documents ORDER BY title, id LIMIT %s", (limit,)).fetchall()


def delete_document(conn: Connection, document_id: int) -> dict:
    row = conn.execute("DELETE FROM documents WHERE id = %s RETURNING id, title, source", (document_id,)).fetchone()
    if row is None:
        raise NotFound(f"no document {document_id}")
    return row
