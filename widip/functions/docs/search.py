"""Hybrid retrieval: full-text and vector ranked separately, fused by reciprocal rank (RRF).

Both rankings are filtered in SQL by what the reader may see (classes from `acces_base_docs`,
`acces_contrats`, `acces_confidential`; clients from `clients_autorises`): a passage the user may
not see never leaves PostgreSQL. A query vector is only compared with chunks embedded by the same
model at the same dimension, through that dimension's partial HNSW index.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from psycopg import Connection, sql

from widip.errors import Invalid
from widip.functions.access_matrix import WILDCARD, AccessRights
from widip.functions.docs.ingest import vector_literal

MODES = ("hybrid", "fulltext", "vector")
#: RRF constant (Cormack et al. 2009): damps the weight of the very first ranks.
RRF_K = 60
#: Candidates each ranking contributes before fusion.
CANDIDATES = 20
MAX_QUERY_CHARS = 500
#: Query words used for full-text (a question rarely has more that matter).
MAX_LEXEMES = 8
#: Rows ranked per relaxation step: bounds the cost when common words match much of the corpus.
RANK_CAP = 200


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
    """Chunk ids by French full-text rank, most query words matched first.

    Plain OR over a question's words matches most of a large corpus sharing its vocabulary, and
    ranking tens of thousands of rows takes a second; plain AND misses paraphrases. So the query
    is relaxed in a few steps — all its words, then any half of them, then any one — stopping as
    soon as `limit` ids are found, and each step ranks at most `RANK_CAP` matching rows.
    """
    lexemes = [r["lexeme"] for r in conn.execute(
        "SELECT lexeme FROM unnest(to_tsvector('widip_french', %s)) ORDER BY positions[1]", (query,))]
    lexemes = [lx for lx in dict.fromkeys(lexemes) if len(lx) > 1][:MAX_LEXEMES]
    found: list[int] = []
    count = len(lexemes)
    for size in sorted({count, (count + 1) // 2, 1} - {0}, reverse=True):
        clauses = [" & ".join(_quote(lx) for lx in group) for group in combinations(lexemes, size)]
        rows = conn.execute(sql.SQL(
            "SELECT s.id FROM (SELECT c.id, c.tsv FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE c.tsv @@ %(q)s::tsquery AND {filter} AND NOT c.id = ANY(%(seen)s) LIMIT %(cap)s) s "
            "ORDER BY ts_rank_cd(s.tsv, %(q)s::tsquery) DESC, s.id LIMIT %(limit)s"
        ).format(filter=_filter()), {"q": " | ".join(f"({c})" for c in clauses), "cap": RANK_CAP, "seen": found,
                                     "limit": limit - len(found), **_params(scope)}).fetchall()
        found.extend(r["id"] for r in rows)
        if len(found) >= limit:
            break
    return found


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
    full-text only.
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
    if mode in ("hybrid", "vector") and embedder is not None:
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
