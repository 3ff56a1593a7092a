"""The embedded HTTP server: the app and its routes (app), the bearer-token check
(auth), serving it with hypercorn (serve), the OpenAPI document (openapi), the
`trio-monitor health` client (health), the status page (page, static/) and the SVG
badges (badges). What the monitor reads for it is view; its Prometheus metrics are
metrics.

Importing this package loads Starlette, but never hypercorn: that is imported only
when serving.
"""

from __future__ import annotations

from .app import build_app
from .health import check_health
from .openapi import openapi_document
from .serve import serve_http

__all__ = ["build_app", "check_health", "openapi_document", "serve_http"]
