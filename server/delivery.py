"""HTTP delivery of published bytes: ETag/304, Range/206/416, HEAD, gzip/brotli, Cache-Control.

Everything the service answers with a body that does not change for a given content hash is an
``Entry``: a published file of a scene version, or a JSON document the API built (scene list,
detail, tour, overlays). An entry carries its strong ETag (the SHA-256 of its bytes; the
manifest already has it for published files), its media type, its compressed forms (computed
once, when it enters the cache) and its response header lists, formatted once per
Cache-Control value and encoding. ``send_entry`` then answers a request with a dict lookup and
two ``send`` calls — the hot path of tile delivery.

Compressed forms have their own ETags (``"<sha>-br"``, ``"<sha>-gz"``): a strong validator
names one representation. Range requests are answered from the identity form.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import brotli

__all__ = [
    "BrokenStream",
    "CACHE_IMMUTABLE",
    "CACHE_REVALIDATE",
    "CACHE_SHORT",
    "Entry",
    "EntryCache",
    "RequestHeaders",
    "json_bytes",
    "json_entry",
    "media_type",
    "send_entry",
    "send_json_error",
]

Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

CACHE_IMMUTABLE = b"public, max-age=31536000, immutable"
"""For ``/v/{version}/`` URLs: a version's files never change."""
CACHE_SHORT = b"public, max-age=60, must-revalidate"
"""For ``/current/`` URLs and the scene documents: a scene can be republished."""
CACHE_REVALIDATE = b"no-cache"
"""For documents that planners change at any time (overlays): always revalidate (304)."""

MEDIA_TYPES = {
    ".glb": b"model/gltf-binary",
    ".gltf": b"model/gltf+json",
    ".json": b"application/json",
    ".geojson": b"application/geo+json",
    ".subtree": b"application/octet-stream",
    ".bin": b"application/octet-stream",
    ".npz": b"application/octet-stream",
    ".png": b"image/png",
    ".jpg": b"image/jpeg",
    ".jpeg": b"image/jpeg",
    ".webp": b"image/webp",
    ".ktx2": b"image/ktx2",
}
COMPRESSIBLE = {b"application/json", b"application/geo+json", b"model/gltf+json"}
_GZIP_LEVEL = 6
_BROTLI_QUALITY = 9
"""Brotli 9 gets within a few per cent of 11 on tileset JSON at a tenth of the time."""
_MIN_COMPRESS = 256
"""Bodies shorter than this are sent as they are (the headers cost more than the gain)."""


def media_type(path: str) -> bytes:
    """The media type of a published file, by its extension."""
    dot = path.rfind(".")
    if dot < 0 or "/" in path[dot:]:
        return b"application/octet-stream"
    return MEDIA_TYPES.get(path[dot:].lower(), b"application/octet-stream")


def json_bytes(document: Any) -> bytes:
    """Compact, deterministic UTF-8 JSON."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class Entry:
    """One immutable response body with its validators, compressed forms and header lists."""

    __slots__ = ("body", "br", "compressible", "etag", "gz", "media_type", "sha256", "size",
                 "_headers")

    def __init__(
        self, body: bytes | None, size: int, sha256: str, content_type: bytes,
        compress: bool = True,
    ) -> None:
        self.body = body
        """The bytes, or None for a file too large to hold (streamed from storage)."""
        self.size = size
        self.sha256 = sha256
        self.etag = b'"' + sha256.encode() + b'"'
        self.media_type = content_type
        self.compressible = content_type in COMPRESSIBLE
        self.gz: bytes | None = None
        self.br: bytes | None = None
        if compress and self.compressible and body is not None and len(body) >= _MIN_COMPRESS:
            gz = gzip.compress(body, _GZIP_LEVEL, mtime=0)
            br = brotli.compress(body, quality=_BROTLI_QUALITY)
            self.gz = gz if len(gz) < len(body) else None
            self.br = br if len(br) < len(body) else None
        self._headers: dict[tuple[bytes, str], Headers] = {}

    @property
    def memory(self) -> int:
        """Bytes this entry holds."""
        return (len(self.body or b"") + len(self.gz or b"") + len(self.br or b"") + 512)

    def variant(self, encoding: str) -> bytes:
        """The body in one encoding ('' identity, 'br', 'gzip')."""
        if encoding == "br" and self.br is not None:
            return self.br
        if encoding == "gzip" and self.gz is not None:
            return self.gz
        return self.body or b""

    def headers(self, cache_control: bytes, encoding: str) -> Headers:
        """The response headers for a 200 in ``encoding``, formatted once."""
        key = (cache_control, encoding)
        headers = self._headers.get(key)
        if headers is None:
            if encoding == "br":
                length, etag = len(self.br or b""), self.etag[:-1] + b'-br"'
            elif encoding == "gzip":
                length, etag = len(self.gz or b""), self.etag[:-1] + b'-gz"'
            else:
                length, etag = self.size, self.etag
            headers = [
                (b"content-type", self.media_type),
                (b"content-length", b"%d" % length),
                (b"etag", etag),
                (b"cache-control", cache_control),
                (b"accept-ranges", b"bytes"),
            ]
            if encoding:
                headers.append((b"content-encoding", encoding.encode()))
            if self.compressible:
                headers.append((b"vary", b"accept-encoding"))
            self._headers[key] = headers
        return headers

    def etag_for(self, encoding: str) -> bytes:
        """The strong ETag of one representation."""
        if encoding == "br":
            return self.etag[:-1] + b'-br"'
        if encoding == "gzip":
            return self.etag[:-1] + b'-gz"'
        return self.etag


def json_entry(document: Any, content_type: bytes = b"application/json") -> Entry:
    """An entry for a JSON document (compact, hashed, compressed)."""
    body = json_bytes(document)
    return Entry(body, len(body), hashlib.sha256(body).hexdigest(), content_type)


class EntryCache:
    """A least-recently-used map of entries bounded by the bytes they hold."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._entries: OrderedDict[Any, Entry] = OrderedDict()
        self.on_change: Callable[[int], None] | None = None

    def get(self, key: Any) -> Entry | None:
        """An entry, marked as recently used; None when it is not held."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: Any, entry: Entry) -> None:
        """Hold an entry, dropping the least recently used ones to stay within capacity."""
        size = entry.memory
        if size > self.capacity:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.held -= old.memory
        self._entries[key] = entry
        self.held += size
        while self.held > self.capacity:
            _, dropped = self._entries.popitem(last=False)
            self.held -= dropped.memory
        if self.on_change is not None:
            self.on_change(self.held)

    def __len__(self) -> int:
        return len(self._entries)


class RequestHeaders:
    """The request headers delivery looks at, found in one pass over the ASGI list."""

    __slots__ = ("accept_encoding", "if_none_match", "if_range", "range")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self.accept_encoding = b""
        self.if_none_match: bytes | None = None
        self.range: bytes | None = None
        self.if_range: bytes | None = None
        for name, value in raw:
            if name == b"accept-encoding":
                self.accept_encoding = value
            elif name == b"if-none-match":
                self.if_none_match = value
            elif name == b"range":
                self.range = value
            elif name == b"if-range":
                self.if_range = value

    def encoding(self) -> str:
        """'br' or 'gzip' when the client accepts it (q > 0), else '' (identity)."""
        if not self.accept_encoding:
            return ""
        accepted: dict[str, float] = {}
        for item in self.accept_encoding.decode("latin-1").lower().split(","):
            coding, _, params = item.partition(";")
            quality = 1.0
            params = params.strip()
            if params.startswith("q="):
                try:
                    quality = float(params[2:])
                except ValueError:
                    quality = 0.0
            accepted[coding.strip()] = quality
        star = accepted.get("*", 0.0)
        for coding in ("br", "gzip"):
            if accepted.get(coding, star) > 0:
                return coding
        return ""


def _etag_matches(header: bytes, etag: bytes) -> bool:
    """If-None-Match: weak comparison against a list of entity tags, or ``*``."""
    if header.strip() == b"*":
        return True
    for tag in header.split(b","):
        tag = tag.strip()
        if tag.startswith(b"W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


_RANGE = re.compile(rb"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


def parse_range(header: bytes, size: int) -> tuple[int, int] | None | bool:
    """One byte range as (start, end inclusive); None: ignore the header; False: unsatisfiable.

    Several ranges or a malformed header are ignored (a full 200 is a valid answer to them).
    """
    match = _RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            return False
        return (max(0, size - suffix), size - 1) if size else False
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return False
    return start, min(end, size - 1)


class BrokenStream(OSError):
    """Storage failed after the response headers were sent."""


StreamBody = Callable[[int, int], Awaitable[bytes]]
"""Reads ``length`` bytes from ``start`` of a large file (in a thread); length 0 closes it."""

_STREAM_CHUNK = 1 << 20


async def send_entry(
    send: Send,
    method: str,
    request: RequestHeaders,
    entry: Entry,
    cache_control: bytes,
    extra: Headers | None = None,
    stream: StreamBody | None = None,
) -> tuple[int, int]:
    """Answer with ``entry``: 200, 206, 304 or 416; returns (status, body bytes sent)."""
    encoding = request.encoding() if entry.compressible and request.range is None else ""
    if encoding == "br" and entry.br is None or encoding == "gzip" and entry.gz is None:
        encoding = ""
    etag = entry.etag_for(encoding)
    if request.if_none_match is not None and _etag_matches(request.if_none_match, etag):
        headers = [(b"etag", etag), (b"cache-control", cache_control)]
        if entry.compressible:
            headers.append((b"vary", b"accept-encoding"))
        if extra:
            headers += extra
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return 304, 0
    byte_range: tuple[int, int] | None | bool = None
    if request.range is not None and (
        request.if_range is None or request.if_range.strip() == entry.etag
    ):
        byte_range = parse_range(request.range, entry.size)
    head = method == "HEAD"
    if byte_range is False:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-range", b"bytes */%d" % entry.size),
            (b"etag", entry.etag),
        ]
        body = json_bytes({"detail": f"range not satisfiable: the file has {entry.size} bytes"})
        headers.append((b"content-length", b"%d" % len(body)))
        if extra:
            headers += extra
        await send({"type": "http.response.start", "status": 416, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})
        return 416, 0 if head else len(body)
    if isinstance(byte_range, tuple):
        start, end = byte_range
        length = end - start + 1
        headers = [
            (b"content-type", entry.media_type),
            (b"content-length", b"%d" % length),
            (b"content-range", b"bytes %d-%d/%d" % (start, end, entry.size)),
            (b"etag", entry.etag),
            (b"cache-control", cache_control),
            (b"accept-ranges", b"bytes"),
        ]
        if extra:
            headers += extra
        await send({"type": "http.response.start", "status": 206, "headers": headers})
        if head:
            await send({"type": "http.response.body", "body": b""})
            return 206, 0
        if entry.body is not None:
            await send({"type": "http.response.body", "body": entry.body[start : end + 1]})
        else:
            assert stream is not None
            await _stream(send, stream, start, length)
        return 206, length
    headers = entry.headers(cache_control, encoding)
    if extra:
        headers = headers + extra
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if head:
        await send({"type": "http.response.body", "body": b""})
        return 200, 0
    if entry.body is None:
        assert stream is not None
        await _stream(send, stream, 0, entry.size)
        return 200, entry.size
    body = entry.variant(encoding)
    await send({"type": "http.response.body", "body": body})
    return 200, len(body)


async def _stream(send: Send, stream: StreamBody, start: int, length: int) -> None:
    """Send a large file in chunks read from storage one at a time."""
    end = start + length
    position = start
    try:
        while position < end:
            size = min(_STREAM_CHUNK, end - position)
            try:
                chunk = await stream(position, size)
            except OSError as exc:
                raise BrokenStream(f"reading {size} bytes at {position}: {exc}") from exc
            if len(chunk) != size:
                raise BrokenStream(f"short read: {len(chunk)} of {size} bytes at {position}")
            position += size
            await send({"type": "http.response.body", "body": chunk, "more_body": position < end})
    finally:
        await stream(end, 0)


async def send_json_error(
    send: Send, method: str, status: int, detail: str, extra: Headers | None = None
) -> int:
    """A small JSON error body, as FastAPI writes its own (``{"detail": ...}``)."""
    body = json_bytes({"detail": detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"cache-control", b"no-store"),
    ]
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
    return 0 if method == "HEAD" else len(body)
