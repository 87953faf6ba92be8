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


def serve(app, modules) -> None:
    """Serve the document describing `modules` (each module's OPENAPI_PATHS) and this endpoint."""
    app.add_route("/openapi.json", OpenApi(build_document(modules, OPENAPI_PATHS)))
