"""Image URLs as the downloader fetches them: ``ipfs://`` through gateways (the next one when one fails),
``ar://`` through an Arweave gateway, ``data:`` URIs decoded in place (size-capped), CDN images at the
asked width. Every network URL still goes through the address guard when it is fetched.

Listings store URLs as found; these rules apply at download time, so changing ``--image-width`` or
``--ipfs-gateway`` takes effect on the next run.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: OpenSea's image CDNs: they resize on ``w=`` (``i.seadn.io``, ``i2.seadn.io``, ``raw2.seadn.io``, ...)
OPENSEA_CDN_SUFFIXES = ("seadn.io", "openseauserdata.com")
_GOOGLE_SIZE_RE = re.compile(r"=(?:s|w)\d+(?:-[a-z0-9-]+)?$", re.IGNORECASE)


class BadUrl(ValueError):
    """A URL the downloader will not fetch; ``reason`` is the catalog's reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def ipfs_to_gateway(url: str, gateway: str) -> str:
    """``ipfs://<cid>/<path>`` (or ``ipfs://ipfs/<cid>/...``) as a gateway URL ``<gateway><cid>/<path>``."""
    rest = url.strip()[len("ipfs://"):]
    if rest.startswith("ipfs/"):
        rest = rest[len("ipfs/"):]
    rest = rest.lstrip("/")
    if not rest:
        raise BadUrl("bad-url", f"an ipfs:// URL without a content id: {url!r}")
    return gateway.rstrip("/") + "/" + rest


def is_opensea_cdn(host: str) -> bool:
    host = host.lower().rstrip(".")
    return any(host == s or host.endswith("." + s) for s in OPENSEA_CDN_SUFFIXES)


def with_width(url: str, width_px: int) -> str:
    """Ask an image CDN for ``width_px``: ``w=`` on OpenSea's CDN (or wherever ``w=`` already is),
    the ``=s<N>`` suffix on the Google-hosted images older OpenSea items use."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host.endswith("googleusercontent.com"):
        path = _GOOGLE_SIZE_RE.sub("", parts.path) + f"=s{width_px}"
        return urlunsplit(parts._replace(path=path))
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not (is_opensea_cdn(host) or any(k == "w" for k, _ in query)):
        return url
    query = [(k, v) for k, v in query if k != "w"] + [("w", str(width_px))]
    return urlunsplit(parts._replace(query=urlencode(query)))


def download_url(url: str | None, *, ipfs_gateway: str, image_width_px: int, arweave_gateway: str = "") -> str:
    """The URL to fetch for a listed image URL; raises :class:`BadUrl` for what must not be fetched."""
    return download_urls(
        url, ipfs_gateways=(ipfs_gateway,), arweave_gateway=arweave_gateway or ARWEAVE_GATEWAY,
        image_width_px=image_width_px,
    )[0]


#: where ``ar://<id>`` is fetched
ARWEAVE_GATEWAY = "https://arweave.net/"


def download_urls(
    url: str | None, *, ipfs_gateways: tuple[str, ...], arweave_gateway: str, image_width_px: int,
) -> list[str]:
    """The URLs to try, in order, for a listed image URL (several for ``ipfs://``: one per gateway; a
    ``data:`` URI is returned as it is); raises :class:`BadUrl` for what must not be fetched."""
    if not url or not url.strip():
        raise BadUrl("no-image-url", "the listing named no image for this item")
    url = url.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return [url]
    if scheme == "ipfs":
        return [ipfs_to_gateway(url, gw) for gw in ipfs_gateways]
    if scheme == "ar":
        rest = url[len("ar://"):].lstrip("/")
        if not rest:
            raise BadUrl("bad-url", f"an ar:// URL without a transaction id: {url!r}")
        url = arweave_gateway.rstrip("/") + "/" + rest
    elif scheme not in ("http", "https"):
        what = scheme or "a relative URL"
        raise BadUrl("bad-scheme", f"only http(s), ipfs://, ar:// and data: URLs are fetched, not {what}: {url[:80]!r}")
    parts = urlsplit(url)
    if not parts.hostname:
        raise BadUrl("bad-url", f"no host in {url[:80]!r}")
    return [with_width(url, image_width_px)]


def decode_data_uri(url: str, max_bytes: int) -> bytes:
    """The bytes of a ``data:`` URI (base64 or percent-encoded); :class:`BadUrl` if malformed or larger
    than ``max_bytes`` (checked before decoding)."""
    import base64
    import binascii
    from urllib.parse import unquote_to_bytes

    head, sep, payload = url.partition(",")
    if not sep or not head.lower().startswith("data:"):
        raise BadUrl("bad-url", "a data: URI without a comma")
    is_base64 = head.lower().endswith(";base64")
    estimate = len(payload) * 3 // 4 if is_base64 else len(payload)
    if estimate > max_bytes:
        raise BadUrl("file-too-large", f"a data: URI of about {estimate} bytes > {max_bytes}")
    try:
        data = base64.b64decode(payload, validate=False) if is_base64 else unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as e:
        raise BadUrl("bad-url", f"a data: URI that does not decode: {e}") from None
    if len(data) > max_bytes:
        raise BadUrl("file-too-large", f"a data: URI of {len(data)} bytes > {max_bytes}")
    return data
