"""GET /openapi.json: the OpenAPI 3.1 description of every endpoint."""

from __future__ import annotations

from widip.http.openapi_doc import build_document, json_response

OPENAPI_PATHS = {
    "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                              "responses": {"200": json_response("OpenAPI 3.1 document")}}},
}


class OpenApi:
    def __init__(self, document: dict):
        self._document = document

    def on_get(self, req, resp):
        resp.media = self._document


def register(app, ctx):
    from widip.http.app import RESOURCE_MODULES

    app.add_route("/openapi.json", OpenApi(build_document(RESOURCE_MODULES)))
