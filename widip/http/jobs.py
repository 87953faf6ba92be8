"""Job polling (GET /jobs/{id}) and the echo job (POST /jobs/echo) that proves the wiring."""

from __future__ import annotations

import falcon

from widip.functions import db, job_table, jobs
from widip.http.auth import require_caller, require_user
from widip.http.openapi_doc import AUTH_ERRORS, SECURED, error, json_body, json_response
from widip.http.validation import read_json
from widip.messaging import door

#: The 503 of every route that queues a pollable job (`accept_job`).
BROKER_UNAVAILABLE = error("job queue unavailable: the text says whether the job failed (send it again) or "
                           "may still run (poll it)")

ECHO_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["message"],
    "properties": {"message": {"type": "string", "minLength": 1, "maxLength": 1000}},
}
JOB_SCHEMA = {
    "type": "object", "required": ["id", "status"],
    "properties": {
        "id": {"type": "string", "format": "uuid"}, "kind": {"type": "string"},
        "status": {"enum": list(jobs.STATUSES)}, "result": {}, "error": {"type": ["string", "null"]},
        "attempts": {"type": "integer"}, "created_at": {"type": "string"},
        "started_at": {"type": ["string", "null"]}, "finished_at": {"type": ["string", "null"]},
    },
}
ACCEPTED_SCHEMA = {"type": "object", "required": ["job_id", "status"],
                   "properties": {"job_id": {"type": "string"}, "status": {"const": "queued"}}}

OPENAPI_PATHS = {
    "/jobs/{job_id}": {"get": {
        "summary": "Status of accepted work: queued | running | retrying | done | failed",
        "operationId": "getJob", "security": SECURED,
        "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {**AUTH_ERRORS, "200": json_response("the job", JOB_SCHEMA), "404": error("no such job")},
    }},
    "/jobs/echo": {"post": {
        "summary": "Enqueue the echo job (proves HTTP → broker → worker → database; N4)",
        "operationId": "postEcho", "security": SECURED,
        "requestBody": json_body(ECHO_SCHEMA),
        "responses": {**AUTH_ERRORS, "202": json_response("accepted; poll Location", ACCEPTED_SCHEMA),
                      "400": error("invalid body"), "503": BROKER_UNAVAILABLE},
    }},
}


def accept_job(resp, pool, job, kind: str, record: dict, **kwargs) -> None:
    """Record a pollable job, enqueue it through the door, and answer 202; 503 naming the job if the
    broker does not answer (the job stays recorded as queued)."""
    row = door.send_tracked(pool, job, kind, record, **kwargs)
    accepted(resp, str(row["id"]))


def accepted(resp, job_id: str, **extra) -> None:
    """The API's one shape for accepted async work: 202, the id, and where to poll."""
    resp.status = falcon.HTTP_202
    resp.location = f"/jobs/{job_id}"
    resp.media = {"job_id": job_id, "status": "queued", **extra}


class Job:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_get(self, req, resp, job_id):
        require_caller(req, 1, scopes=("frontend",))
        with db.transaction(self._ctx.pool) as conn:
            resp.media = jobs.public_view(jobs.get_job(conn, job_id))


class Echo:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_post(self, req, resp):
        require_user(req, 4)  # a diagnostic for operators, not an open queue
        body = read_json(req, ECHO_SCHEMA)
        accept_job(resp, self._ctx.pool, job_table.ECHO_MESSAGE, "echo", body, message=body["message"])


def register(app, ctx):
    app.add_route("/jobs/echo", Echo(ctx))
    app.add_route("/jobs/{job_id}", Job(ctx))
