"""Falcon HTTP layer: app factory, resources, error mapping and the OpenAPI document.

The resource modules are listed in `widip.http.app.RESOURCE_MODULES`.
"""
