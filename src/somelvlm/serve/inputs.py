"""Turning request fields into safe inputs: base64 / data-URI images decoded with limits, and a
clear refusal of anything that would make the server read a file or fetch a URL."""

from __future__ import annotations

import base64
import binascii
import re

from somelvlm.posts import (
    MODEL_IMAGE_LONG_SIDE,
    MODEL_IMAGE_SHORT_SIDE,
    Limits,
    PostError,
    check_image,
    fit_scale,
    load_image,
)
from somelvlm.serve.errors import APIError

_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,",
                       re.IGNORECASE)
_B64_CHARS = re.compile(r"^[A-Za-z0-9+/=_\-\s]*$")


def decode_base64_field(value: str, param: str, max_bytes: int) -> bytes:
    """Bytes of a base64 string or a ``data:...;base64,`` URI; URLs and file paths are refused."""
    if not isinstance(value, str):
        raise APIError(400, f"{param} must be a base64 string or a data: URI, got {type(value).__name__}", param=param)
    value = value.strip()
    lowered = value[:16].lower()
    if lowered.startswith(("http://", "https://", "file:", "ftp://")):
        raise APIError(400, f"{param}: the server never fetches URLs or reads files; send the image as a "
                            "base64 data: URI", param=param)
    match = _DATA_URI.match(value)
    if match:
        if not match.group("b64"):
            raise APIError(400, f"{param}: only base64 data: URIs are accepted (';base64,' missing)", param=param)
        value = value[match.end():]
    elif _looks_like_path(value):
        raise APIError(400, f"{param} looks like a file path: the server never reads files named by a request; "
                            "send the image bytes as base64", param=param)
    if len(value) * 3 // 4 > max_bytes:
        raise APIError(413, f"{param}: the image exceeds {max_bytes} bytes", param=param)
    if not _B64_CHARS.match(value):
        bad = next(c for c in value if not _B64_CHARS.match(c))
        raise APIError(400, f"{param} is not valid base64 (character {bad!r} at position {value.index(bad)})",
                       param=param)
    try:
        compact = re.sub(r"\s+", "", value)
        if "-" in compact or "_" in compact:
            data = base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
        else:
            data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as err:
        raise APIError(400, f"{param} is not valid base64 ({err})", param=param) from None
    if not data:
        raise APIError(400, f"{param} is empty", param=param)
    return data


def _looks_like_path(value: str) -> bool:
    """Whether a field is a file path rather than base64.

    ``./``, ``../``, ``~`` and ``C:\\`` cannot start base64. A leading ``/`` can: base64 of bytes
    starting 0xFC-0xFF, which is how every JPEG (FF D8 FF) starts (``/9j/``). So a ``/...`` value is
    a path unless it is strict base64 of bytes with an image signature.
    """
    if value.startswith(("./", "../", "~")) or re.match(r"^[A-Za-z]:\\", value):
        return True
    if not value.startswith("/"):
        return False
    compact = re.sub(r"\s+", "", value)
    try:
        head = base64.b64decode(compact[:64] + "=" * (-len(compact[:64]) % 4), validate=True)
    except (binascii.Error, ValueError):
        return True
    return not head.startswith(_IMAGE_SIGNATURES_FROM_SLASH)


_IMAGE_SIGNATURES_FROM_SLASH = (b"\xff\xd8\xff",)
"""Image signatures whose base64 starts with ``/`` (first byte 0xFC-0xFF): JPEG."""


def decode_image(data: bytes, limits: Limits, param: str = "image"):
    """An RGB PIL image from untrusted bytes, reduced while decoded as the batch runner does
    (``MODEL_IMAGE_SHORT_SIDE`` / ``MODEL_IMAGE_LONG_SIDE``: bounded memory under concurrent
    requests, the same post gives the same answer); 413 over the pixel/byte limits, 400 when not an image."""
    try:
        return load_image(bytes(data), limits, max_side=MODEL_IMAGE_LONG_SIDE, short_side=MODEL_IMAGE_SHORT_SIDE)
    except PostError as err:
        status = 413 if err.reason == "image too large" else 400
        raise APIError(status, f"{param}: {err}", param=param) from None


def check_image_bytes(data: bytes, limits: Limits, param: str = "image") -> tuple[int, int]:
    """The checks ``decode_image`` makes before decoding (byte and pixel limits, an image format), from the
    header only: for an image no chosen task reads, which is then never decoded; 413 / 400 as there.
    Returns ``(width, height)`` reduced as ``decode_image`` would (before any EXIF rotation)."""
    try:
        width, height = check_image(bytes(data), limits)
    except PostError as err:
        status = 413 if err.reason == "image too large" else 400
        raise APIError(status, f"{param}: {err}", param=param) from None
    scale = fit_scale(width, height, MODEL_IMAGE_LONG_SIDE, MODEL_IMAGE_SHORT_SIDE)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))
