"""The documentation over HTTP: search for humans (N1+), ingestion and removal (N3+)."""

from __future__ import annotations

import base64
import binascii


from widip.errors import Invalid
from widip.functions import db, job_table
from widip.functions.access_matrix import access_for
from widip.functions.docs import ingest, search
from widip.functions.docs.chunking import format_for
from widip.functions.docs.embedding import embedder_for
from widip.http.auth import require_user
from widip.http.jobs import BROKER_UNAVAILABLE, accept_job
from widip.http.openapi_doc import error, json_response, operation
from widip.http.validation import read_json

MANAGE_LEVEL = 3
READ_LEVEL = 1
UPLOAD_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["filename"],
    "oneOf": [{"required": ["content"]}, {"required": ["content_base64"]}],
    "properties": {
        "filename": {"type": "string", "minLength": 3, "maxLength": 200, "pattern": r"^[^/\\]+$"},
        "content": {"type": "string", "minLength": 1, "description": "text of a .md, .txt or .html file"},
        "content_base64": {"type": "string", "minLength": 4, "description": "bytes of any file (PDF)"},
        "title": {"type": "string", "maxLength": 200},
        "class": {"enum": list(ingest.CLASSES)},
        "client": {"type": "string", "maxLength": 200},
    }}
ID = [{"name": "document_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
OPENAPI_PATHS = {
    "/documents": {
        "get": operation("Ingested documents (N3+)", "listDocuments", {"200": json_response("documents")}),
        "post": operation("Ingest a document: Markdown, text, HTML or PDF (N3+); poll the job", "postDocument",
                          {"202": json_response("accepted"), "400": error("invalid body"), "503": BROKER_UNAVAILABLE},
                          body=UPLOAD_SCHEMA)},
    "/documents/{document_id}": {
        "delete": operation("Remove a document and its passages (N3+)", "deleteDocument",
                            {"200": json_response("deleted"), "404": error("no such document")}, params=ID)},
    "/documents/search": {
        "get": operation("Passages I may read that answer q (N1+)", "searchDocuments",
                         {"200": json_response("passages"), "400": error("missing or bad q")},
                         params=[{"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
                                 {"name": "limit", "in": "query", "schema": {"type": "integer"}}])},
}


def _view(row: dict) -> dict:
    return {**{k: row[k] for k in ("id", "title", "source", "class", "client", "format", "chunk_count",
                                   "ingested_by")}, "ingested_at": row["ingested_at"].isoformat()}


class Documents:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_get(self, req, resp):
        require_user(req, MANAGE_LEVEL)
        with db.transaction(self._ctx.pool) as conn:
            rows = ingest.list_documents(conn)
        resp.media = {"documents": [_view(r) for r in rows]}

    def on_post(self, req, resp):
        user = require_user(req, MANAGE_LEVEL)
        body = read_json(req, UPLOAD_SCHEMA)
        fmt = format_for(body["filename"])
        if "content_base64" in body:
            try:
                raw = base64.b64decode(body["content_base64"], validate=True)
            except (binascii.Error, ValueError):
                raise Invalid("content_base64: not valid base64") from None
        else:
            raw = body["content"].encode()
        accept_job(resp, self._ctx.pool, job_table.INGEST_DOCUMENT, job_table.INGEST_DOCUMENT.name,
                   {"filename": body["filename"], "class": body.get("class", "public")},
                   source=f"upload:{body['filename']}", content_base64=base64.b64encode(raw).decode(),
                   fmt=fmt, doc_class=body.get("class", "public"), client=body.get("client"),
                   title=body.get("title"), ingested_by=f"human:{user.username}")

    def on_get_search(self, req, resp):
        user = require_user(req, READ_LEVEL)
        query = req.get_param("q", required=True)
        limit = req.get_param_as_int("limit", min_value=1, max_value=20, default=5)
        # The offline embedding model is never loaded in web: full-text here unless Ollama embeds.
        embedder = embedder_for(self._ctx.settings) if self._ctx.settings.ollama_embed_model else None
        with db.transaction(self._ctx.pool) as conn:
            scope = search.Scope.of(access_for(conn, user.user_id))
            found = search.search(conn, query, scope, embedder=embedder, limit=limit)
        resp.media = {"query": query, "mode": "hybrid" if embedder else "fulltext", "passages": found}


class Document:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_delete(self, req, resp, document_id):
        require_user(req, MANAGE_LEVEL)
        try:
            number = int(document_id)
        except ValueError:
            raise Invalid("document_id must be an integer") from None
        with db.transaction(self._ctx.pool) as conn:
            row = ingest.delete_document(conn, number)
        resp.media = {"deleted": row}


def register(app, ctx):
    documents = Documents(ctx)
    app.add_route("/documents", documents)
    app.add_route("/documents/search", documents, suffix="search")
    app.add_route("/documents/{document_id}", Document(ctx))
