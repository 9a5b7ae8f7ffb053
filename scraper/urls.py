"""Image URLs as the downloader fetches them: ``ipfs://`` through a gateway, CDN thumbnails at full width.

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


def download_url(url: str | None, *, ipfs_gateway: str, image_width_px: int) -> str:
    """The URL to fetch for a listed image URL; raises :class:`BadUrl` for what must not be fetched."""
    if not url or not url.strip():
        raise BadUrl("no-image-url", "the listing named no image for this item")
    url = url.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "ipfs":
        url = ipfs_to_gateway(url, ipfs_gateway)
    elif scheme not in ("http", "https"):
        what = scheme or "a relative URL"
        raise BadUrl("bad-scheme", f"only http(s) and ipfs:// URLs are fetched, not {what}: {url[:80]!r}")
    parts = urlsplit(url)
    if not parts.hostname:
        raise BadUrl("bad-url", f"no host in {url[:80]!r}")
    return with_width(url, image_width_px)
