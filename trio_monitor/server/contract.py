"""What the HTTP API promises, shared by the handlers (app.py), the bearer-token
middleware (auth.py) and the OpenAPI document (openapi.py): the path prefix, the row
limits and defaults, and the shape of every JSON answer (never cached) and of every
error (`{"error": "..."}`, never a traceback).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse

API = "/api/v1"
RECENT = 50  # probes in a target's detail
MAX_ROWS = 10_000  # samples or incidents in one answer at most: the newest (`truncated`)
DEFAULT_SINCE = "24h"

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]
JSONObject = dict[str, JSONValue]


class JSON(JSONResponse):
    """A JSON answer: the API's data changes with every probe, so never cached."""

    def __init__(
        self, content: object, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(content, status_code, {"cache-control": "no-store", **(headers or {})})


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSON:
    return JSON({"error": message}, status, headers)
