"""JSON errors in the OpenAI shape, so OpenAI clients and our page show the server's reason.

``{"error": {"message": "...", "type": "invalid_request_error", "param": "image", "code": 400}}``
"""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error a handler raises to answer ``status`` with a JSON body naming what and where."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.headers = headers or {}


def error_body(status: int, message: str, type: str = "invalid_request_error", param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": status}}


def json_bytes(status: int, message: str, type: str = "invalid_request_error", param: str | None = None) -> bytes:
    import json

    return json.dumps(error_body(status, message, type, param)).encode("utf-8")
