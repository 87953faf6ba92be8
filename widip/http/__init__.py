"""Falcon HTTP layer: app factory, resources, error mapping and the OpenAPI document.

Every module here that defines `register(app, ctx)` and `OPENAPI_PATHS` is wired by `create_app`.
"""
