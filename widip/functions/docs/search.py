"""Hybrid retrieval: full-text and vector ranked separately, fused by reciprocal rank (RRF).

Both rankings are filtered in SQL by what the reader may see (classes from `acces_base_docs`,
`acces_contrats`, `acces_confidential`; clients from `clients_autorises`): a passage the user may
not see never leaves PostgreSQL. A query vector is only compared with chunks embedded by the same
model at the same dimension, through that dimension's partial HNSW index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from psycopg import Connection, sql

from widip.errors import Invalid
from widip.functions.access_matrix import WILDCARD, AccessRights
from widip.functions.docs.ingest import has_stale, vector_literal

MODES = ("hybrid", "fulltext", "vector")
#: RRF constant (Cormack et al. 2009): damps the weight of the very first ranks.
RRF_K = 60
#: Candidates each ranking contributes before fusion.
CANDIDATES = 20
MAX_QUERY_CHARS = 500
#: Query words used for full-text (a question rarely has more that matter).
MAX_LEXEMES = 8
#: Rows the full-text candidates may match (estimated) before ranking: ranking costs ~1 µs a row.
CANDIDATE_BUDGET = 2_000
#: PostgreSQL's default share for a lexeme its statistics do not list (DEFAULT_TS_MATCH_SEL).
UNLISTED_SHARE = 0.005
#: Hard bound on the rows ranked, whatever the estimate said.
RANK_CAP = 4 * CANDIDATE_BUDGET



@dataclass(frozen=True)
class Scope:
    """What a reader may retrieve: document classes, and clients (None: every client)."""

    classes: tuple[str, ...]
    clients: tuple[str, ...] | None

    @classmethod
    def of(cls, rights: AccessRights | None) -> "Scope":
        """A user's scope from their access matrix row; None (no human behind the call) sees public docs."""
        if rights is None:
            return cls(("public",), ())
        classes = tuple(name for name, flag in (("public", rights.acces_base_docs),
                                                 ("contrats", rights.acces_contrats),
                                                 ("confidential", rights.acces_confidential)) if flag)
        clients = None if WILDCARD in rights.clients_autorises else tuple(
            c.casefold() for c in rights.clients_autorises)
        return cls(classes, clients)


def _filter() -> sql.Composable:
    return sql.SQL("d.class = ANY(%(classes)s) AND (d.client IS NULL OR %(all_clients)s "
                   "OR lower(d.client) = ANY(%(clients)s))")


def _params(scope: Scope) -> dict:
    return {"classes": list(scope.classes), "all_clients": scope.clients is None,
            "clients": list(scope.clients or ())}


def fulltext_ids(conn: Connection, query: str, scope: Scope, limit: int = CANDIDATES) -> list[int]:
    """Chunk ids by French full-text rank (`ts_rank_cd` over all the question's words).

    Ranking every chunk that shares a common word with the question takes a second on a large
    corpus, and requiring every word misses paraphrases. So the rows to rank are chosen from the
    question's rarest words (PostgreSQL's own lexeme statistics, `lexeme_shares`): the rare words
    OR'ed while their estimated matches stay under CANDIDATE_BUDGET, or, when even the rarest word
    is common, the rarest words AND'ed until the estimate fits. Those candidates are then ranked by
    the rarity of the question's words they contain, then by `ts_rank_cd` on every word.
    """
    lexemes = [r["lexeme"] for r in conn.execute(
        "SELECT lexeme FROM unnest(to_tsvector('widip_french', %s)) ORDER BY positions[1]", (query,))]
    lexemes = [lx for lx in dict.fromkeys(lexemes) if len(lx) > 1][:MAX_LEXEMES]
    if not lexemes:
        return []
    shares, total = lexeme_shares(conn)
    rows = conn.execute(sql.SQL(
        "SELECT s.id FROM (SELECT c.id, c.tsv FROM chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE c.tsv @@ %(candidates)s::tsquery AND {filter} LIMIT %(cap)s) s "
        "ORDER BY {matched} DESC, ts_rank_cd(s.tsv, %(q)s::tsquery) DESC, s.id LIMIT %(limit)s"
    ).format(filter=_filter(), matched=_matched_weight(lexemes, shares, total)),
        {"candidates": candidate_query(lexemes, shares, total), "q": " | ".join(_quote(lx) for lx in lexemes),
         "cap": RANK_CAP, "limit": limit, **_params(scope)}).fetchall()
    return [r["id"] for r in rows]


def _matched_weight(lexemes: list[str], shares: dict[str | None, float], total: float) -> sql.Composable:
    """Σ over the question's words found in the passage of the word's rarity (log inverse share):
    a passage with the question's rare words outranks one repeating its common ones."""
    floor = 1.0 / max(total, 1.0)
    unknown = shares[None]
    terms = [sql.SQL("(s.tsv @@ {q}::tsquery)::int * {w}").format(
        q=sql.Literal(_quote(lx)), w=sql.Literal(round(math.log(1.0 + 1.0 / max(shares.get(lx, unknown), floor)), 4)))
        for lx in lexemes]
    return sql.SQL("(") + sql.SQL(" + ").join(terms) + sql.SQL(")")


def candidate_query(lexemes: list[str], shares: dict[str | None, float], total: float) -> str:
    """The tsquery choosing which rows to rank: rare words OR'ed, else the rarest AND'ed (see fulltext_ids)."""
    unknown = shares[None]
    by_rarity = sorted(lexemes, key=lambda lx: shares.get(lx, unknown))
    share = [shares.get(lx, unknown) for lx in by_rarity]
    if share[0] * total <= CANDIDATE_BUDGET:
        chosen, expected = [], 0.0
        for lexeme, part in zip(by_rarity, share):
            if chosen and expected + part * total > CANDIDATE_BUDGET:
                break
            chosen.append(lexeme)
            expected += part * total
        return " | ".join(_quote(lx) for lx in chosen)
    chosen, expected = [], total
    for lexeme, part in zip(by_rarity, share):
        chosen.append(lexeme)
        expected *= part
        if expected <= CANDIDATE_BUDGET:
            break
    return " & ".join(_quote(lx) for lx in chosen)


def lexeme_shares(conn: Connection) -> tuple[dict[str, float], float]:
    """({lexeme: share of chunks containing it}, chunk count) from ANALYZE's statistics on `chunks.tsv`
    (autovacuum keeps them current; reading them costs well under a millisecond).

    A lexeme missing from the statistics is rarer than every listed one: like PostgreSQL's own
    estimator (`tsquerysel`), it gets min(0.5 %, half the least listed share), under the key None.
    Before the first ANALYZE nothing is listed and every word counts as rare, right for a small corpus.
    """
    row = conn.execute(
        "SELECT s.most_common_elems::text::text[] AS lexemes, s.most_common_elem_freqs AS freqs, "
        "greatest(c.reltuples, 0) AS total FROM pg_class c LEFT JOIN pg_stats s ON s.tablename = c.relname "
        "AND s.attname = 'tsv' AND s.schemaname = current_schema() "
        "WHERE c.relname = 'chunks' AND c.relnamespace = current_schema()::regnamespace").fetchone()
    if row is None or not row["lexemes"]:
        return {None: 0.0}, float(row["total"]) if row else 0.0
    # most_common_elem_freqs ends with three summary values: the least and greatest share, the null share.
    freqs = row["freqs"]
    shares: dict[str | None, float] = dict(zip(row["lexemes"], freqs))
    shares[None] = min(UNLISTED_SHARE, freqs[-3] / 2)
    return shares, float(row["total"])


def _quote(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "").replace("'", "''") + "'"


def vector_ids(conn: Connection, vector: list[float], model: str, scope: Scope,
               limit: int = CANDIDATES) -> list[int]:
    """Chunk ids by cosine distance to `vector`, among chunks of the same model and dimension."""
    dimension = len(vector)
    if not dimension or not any(vector):
        return []
    conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")  # filtered scans still fill `limit`
    rows = conn.execute(sql.SQL(
        "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE c.embedding_dim = {dim} AND c.embedding_model = {model} AND {filter} "
        "ORDER BY c.embedding::vector({dim}) <=> %(vector)s::vector({dim}) LIMIT %(limit)s"
    ).format(dim=sql.Literal(dimension), model=sql.Literal(model), filter=_filter()),
        {"vector": vector_literal(vector), "limit": limit, **_params(scope)}).fetchall()
    return [r["id"] for r in rows]


def fuse(*rankings: list[int], k: int = RRF_K) -> list[int]:
    """Reciprocal rank fusion: sum of 1/(k + rank) over the rankings an id appears in."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda i: (-scores[i], i))


def search(conn: Connection, query: str, scope: Scope, *, embedder=None, limit: int = 5,
           mode: str = "hybrid") -> list[dict]:
    """The best passages for `query` the scope allows, with title, heading path and citation id.

    Without an embedder (the web process, where the offline model is never loaded) the ranking is
    full-text only. So is a hybrid ranking while the embedding model changes: the vector ranking
    would only see the passages already re-embedded and push them up whatever their relevance.
    """
    query = (query or "").strip()
    if not query:
        raise Invalid("q: the query is empty")
    if mode not in MODES:
        raise Invalid(f"mode must be one of {', '.join(MODES)}")
    query = query[:MAX_QUERY_CHARS]
    if not scope.classes:
        return []
    rankings = []
    if mode in ("hybrid", "fulltext"):
        rankings.append(fulltext_ids(conn, query, scope))
    if embedder is not None and (mode == "vector" or mode == "hybrid" and not has_stale(conn, embedder.model)):
        rankings.append(vector_ids(conn, embedder.embed([query])[0], embedder.model, scope))
    ids = fuse(*rankings)[:limit]
    return passages(conn, ids)


def passages(conn: Connection, ids: list[int]) -> list[dict]:
    if not ids:
        return []
    rows = {r["id"]: r for r in conn.execute(
        "SELECT c.id, c.citation, c.heading, c.text, d.id AS document_id, d.title, d.source, d.class, d.client "
        "FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = ANY(%s)", (ids,))}
    return [{"citation": rows[i]["citation"], "document_id": rows[i]["document_id"], "title": rows[i]["title"],
             "heading": rows[i]["heading"], "text": rows[i]["text"], "source": rows[i]["source"],
             "class": rows[i]["class"], "client": rows[i]["client"]} for i in ids if i in rows]
