"""Request body → image bytes, with the size limit enforced while the body streams in.

Two ways to send an image: a multipart/form-data field (``file``, or repeated ``files`` for a batch), or the
raw bytes as the body with an ``image/*`` or ``application/octet-stream`` Content-Type.  The limit
(``--max-upload-mb``) counts the image bytes of the request (all files of a batch together).  A
Content-Length over it is refused before one byte of the body is read; a body without one (chunked) is
counted chunk by chunk and refused as soon as it passes the limit, so a client cannot make the server read
gigabytes.  Multipart framing and other fields get a fixed allowance (:data:`FORM_ALLOWANCE`) on top.

Problems with the request itself raise :class:`ApiError` with the HTTP status and one line for the user.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

__all__ = ["ApiError", "Upload", "FORM_ALLOWANCE", "RAW_TYPES", "read_images"]

FORM_ALLOWANCE = 1024 * 1024  # multipart headers, boundaries and small extra fields, beyond the image bytes
RAW_TYPES = ("image/*", "application/octet-stream")
_HOW = ("send the image as multipart field `file` (curl -F file=@photo.jpg) or as the raw body with "
        "Content-Type image/jpeg, image/png, … or application/octet-stream")


class ApiError(Exception):
    """A request the server refuses: ``status`` (4xx) and a message naming what to send instead."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Upload:
    name: str  # the multipart file name, or "request body"
    data: bytes


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    name: str | None = None
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"upload too large: over the server's limit of {limit / 2**20:g} MB "
                         "(clf-serve --max-upload-mb); send a smaller image")


async def _chunks(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise ApiError(400, "the client disconnected before the request body was complete") from None


async def read_images(request: Request, *, fields: tuple[str, ...], max_bytes: int,
                      allow_raw: bool = True) -> list[Upload]:
    """The images of a request: every multipart part named in ``fields``, or the raw body (``allow_raw``)."""
    media, params = parse_options_header(request.headers.get("content-type"))
    media = media.decode("latin-1").lower()
    multipart = media == "multipart/form-data"
    raw = allow_raw and (media in ("", "application/octet-stream") or media.startswith("image/"))
    if not (multipart or raw):
        what = f"Content-Type {media}" if media else "a body without a Content-Type"
        how = _HOW if allow_raw else "send the images as repeated multipart fields `files` (curl -F files=@a.jpg " \
                                     "-F files=@b.jpg)"
        raise ApiError(415, f"{what} is not accepted here: {how}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > max_bytes + (FORM_ALLOWANCE if multipart else 0):
            raise _too_large(max_bytes)
    if raw:
        data = bytearray()
        async for chunk in _chunks(request):
            data.extend(chunk)
            if len(data) > max_bytes:
                raise _too_large(max_bytes)
        return [Upload("request body", bytes(data))]
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "multipart/form-data without a boundary parameter in its Content-Type")
    return await _read_multipart(request, boundary, fields, max_bytes)


async def _read_multipart(request: Request, boundary: bytes, fields: tuple[str, ...],
                          max_bytes: int) -> list[Upload]:
    parts: list[_Part] = []
    header = [b"", b""]  # the name and value of the part header being read
    sizes = {"images": 0, "other": 0}
    ended = [False]

    def on_part_begin() -> None:
        parts.append(_Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        parts[-1].headers.append((header[0].lower(), header[1]))
        header[0] = header[1] = b""

    def on_headers_finished() -> None:
        part = parts[-1]
        disposition = dict(part.headers).get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        if b"name" not in options:
            raise ApiError(400, "a multipart part has no field name (Content-Disposition: form-data; name=...)")
        part.name = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options:
            part.filename = options[b"filename"].decode("utf-8", "replace")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part = parts[-1]
        size = end - start
        if part.name in fields:
            sizes["images"] += size
            if sizes["images"] > max_bytes:
                raise _too_large(max_bytes)
            part.data.extend(data[start:end])
        else:  # other fields are read past, not kept
            sizes["other"] += size
            if sizes["other"] > FORM_ALLOWANCE:
                raise ApiError(413, f"multipart fields other than {', '.join(fields)} are over "
                                    f"{FORM_ALLOWANCE // 1024} KB; send only the image field")

    def on_end() -> None:
        ended[0] = True

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_end": on_end,
    })
    try:
        async for chunk in _chunks(request):
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise ApiError(400, f"malformed multipart/form-data body ({exc})") from None
    if not ended[0]:
        raise ApiError(400, "the multipart/form-data body ended before its closing boundary")
    images = [p for p in parts if p.name in fields]
    if not images:
        names = sorted({p.name for p in parts if p.name})
        found = f" (found: {', '.join(names)})" if names else ""
        raise ApiError(400, f"no image in the request: expected multipart field "
                            f"{' or '.join(f'`{f}`' for f in fields)}{found}")
    return [Upload(p.filename or p.name or "file", bytes(p.data)) for p in images]
