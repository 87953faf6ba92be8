"""The LLM gateway (seed LLM_Gateway / LLM_Result): POST /llm/requests, GET /llm/requests/{id}."""

from __future__ import annotations

import falcon

from widip.functions.llm import gateway as llm_gateway, queue as llm_queue
from widip.errors import Forbidden, Invalid
from widip.http.openapi_doc import AUTH_ERRORS, SECURED, error, json_body, json_response
from widip.http.auth import require_caller
from widip.http.validation import read_json
from widip.messaging import door

ACCEPTED_SCHEMA = {
    "type": "object", "required": ["request_id", "status", "position", "estimated_wait"],
    "properties": {
        "request_id": {"type": "string", "format": "uuid"}, "status": {"const": "pending"},
        "running": {"type": "boolean"},
        "position": {"type": "integer", "description": "LLM jobs expected to start before this one"},
        "estimated_wait": {"type": "number", "description": "seconds before it starts (estimate)"},
    },
}
RESULT_SCHEMA = {
    "type": "object", "required": ["request_id", "status"],
    "properties": {
        "request_id": {"type": "string"}, "status": {"enum": ["done", "failed"]},
        "source": {"type": "string"}, "result": {"type": ["string", "null"]},
        "error": {"type": "string"}, "provider": {"type": "string"}, "model": {"type": "string"},
        "usage": {"type": "object"}, "duration_ms": {"type": "integer"}, "completed_at": {"type": "string"},
    },
}

OPENAPI_PATHS = {
    "/llm/requests": {"post": {
        "summary": "Queue a prompt for the LLM; the source picks the priority "
                   "(proactif_sentinel > proactif_notificateur > assist > wibot)",
        "description": "callback_url, when given, must be http(s) on a host of LLM_CALLBACK_ALLOWLIST; "
                       "the result is POSTed to it as JSON (the GET body), redirects are not followed.",
        "operationId": "postLlmRequest", "security": SECURED,
        "requestBody": json_body(llm_gateway.SUBMIT_SCHEMA),
        "responses": {**AUTH_ERRORS, "202": json_response("accepted; poll Location", ACCEPTED_SCHEMA),
                      "400": error("invalid body, unknown source or refused callback URL"),
                      "503": error("queue unavailable")},
    }},
    "/llm/requests/{request_id}": {"get": {
        "summary": "The result (200, kept 5 min) or the place in the queue (202 pending)",
        "operationId": "getLlmRequest", "security": SECURED,
        "parameters": [{"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {**AUTH_ERRORS, "200": json_response("finished: done or failed", RESULT_SCHEMA),
                      "202": json_response("still pending; retry in 1-2 s", ACCEPTED_SCHEMA),
                      "404": error("unknown request, or its result expired")},
    }},
}


#: Machine clients (internal workflows) use a service token with this scope; humans need N1.
GATEWAY_SCOPE = "llm:gateway"


class LlmRequests:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_post(self, req, resp):
        caller = require_caller(req, 1, scopes=(GATEWAY_SCOPE,))
        body = read_json(req, llm_gateway.SUBMIT_SCHEMA)
        settings = self._ctx.settings
        if caller.is_human and llm_queue.class_for(body["source"]).name != "wibot":
            # The top classes are the GPU's promise to Sentinel and Assist: people queue as WIBOT.
            raise Forbidden("a technician's prompts run at the wibot priority; other sources are for system workflows")
        if body.get("model") and body["model"] not in (settings.ollama_model, settings.anthropic_model):
            raise Invalid(f"model must be one of the configured models: {settings.ollama_model}, "
                          f"{settings.anthropic_model}")
        accepted = llm_gateway.submit(self._ctx.redis, self._ctx.settings, body,
                                      enqueue=door.send_llm_entry)
        resp.status = falcon.HTTP_202
        resp.location = f"/llm/requests/{accepted['request_id']}"
        resp.media = accepted


class LlmRequest:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_get(self, req, resp, request_id):
        require_caller(req, 1, scopes=(GATEWAY_SCOPE,))
        view = llm_gateway.request_status(self._ctx.redis, request_id)
        if view["status"] == "pending":
            resp.status = falcon.HTTP_202
            resp.set_header("Retry-After", "1")
        resp.media = view


def register(app, ctx):
    app.add_route("/llm/requests", LlmRequests(ctx))
    app.add_route("/llm/requests/{request_id}", LlmRequest(ctx))
