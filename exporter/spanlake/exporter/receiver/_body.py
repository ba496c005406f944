"""Request bodies: media type and encoding negotiation, and decompression that never
inflates past the size limit (a zip bomb is cut off at ``limit`` bytes, not after)."""

from __future__ import annotations

import zlib
from typing import Literal

from spanlake.exporter.receiver._errors import BadRequest, TooLarge, UnsupportedMedia

Format = Literal["protobuf", "json"]

_MEDIA_TYPES: dict[str, Format] = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}
_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
_CHUNK = 64 * 1024


def media_format(content_type: str | None) -> Format:
    """The OTLP body format of a ``Content-Type`` header (parameters ignored)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    fmt = _MEDIA_TYPES.get(media)
    if fmt is None:
        raise UnsupportedMedia(
            f"unsupported content type {content_type!r}: "
            "use application/x-protobuf or application/json"
        )
    return fmt


def check_encoding(content_encoding: str | None) -> str:
    """The normalised ``Content-Encoding`` (``""``, ``gzip`` or ``deflate``)."""
    enc = (content_encoding or "").strip().lower()
    if enc not in _ENCODINGS:
        raise UnsupportedMedia(
            f"unsupported content encoding {content_encoding!r}: use gzip or deflate"
        )
    if enc == "identity":
        return ""
    return "gzip" if enc == "x-gzip" else enc


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """``body`` decoded per ``encoding``; raises TooLarge as soon as the output passes
    ``limit`` and BadRequest for a corrupt stream. Concatenated gzip members are read."""
    if not encoding:
        if len(body) > limit:
            raise TooLarge(f"request body of {len(body)} bytes exceeds the {limit}-byte limit")
        return body
    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif len(body) >= 2 and (body[0] & 0x0F) == 8 and ((body[0] << 8) | body[1]) % 31 == 0:
        wbits = zlib.MAX_WBITS  # RFC 1950 zlib wrapper (what HTTP "deflate" means)
    else:
        wbits = -zlib.MAX_WBITS  # raw RFC 1951 stream, which some clients send
    out = bytearray()
    data = body
    try:
        while data:
            inflater = zlib.decompressobj(wbits)
            pending = data
            while pending:
                out += inflater.decompress(pending, limit + 1 - len(out))
                if len(out) > limit:
                    raise TooLarge(f"decompressed request body exceeds the {limit}-byte limit")
                pending = inflater.unconsumed_tail
                if inflater.eof:
                    break
            if not inflater.eof:
                out += inflater.flush(limit + 1 - len(out))
                if len(out) > limit:
                    raise TooLarge(f"decompressed request body exceeds the {limit}-byte limit")
                if not inflater.eof:
                    raise BadRequest(f"truncated {encoding} body")
            # gzip allows several members back to back; anything else must be empty.
            data = inflater.unused_data if encoding == "gzip" else b""
    except zlib.error as exc:
        raise BadRequest(f"corrupt {encoding} body: {exc}") from None
    return bytes(out)
