"""The downloader: each listed image fetched once, streamed, sniffed, stored by content.

:func:`fetch_all` fetches each distinct URL once, with bounded concurrency and a per-host limit, and
reports one :class:`Outcome` per URL (``scraper.sinks.DownloadTally`` turns them into catalog rows). A body streams into
memory, spilling into a temp file inside storage once it passes ``SPILL_BYTES`` (so memory stays bounded
and a typical image costs the event loop no file-system call); ``--max-bytes`` stops it early. The first
4 KiB decide what the file is (never the server's Content-Type): images are written to a temp file,
fsynced and renamed into content-addressed storage in a worker thread; an HTML error page is a failure,
a video is rejected (the listing already chose a poster image when one was offered). Temp files are
removed on every path out, so storage never holds a partial file. 429/599 answers pause the whole host for ``Retry-After``; 5xx, timeouts,
truncated bodies and connection errors are retried with backoff (:mod:`scraper.backoff`). Every
connection passes the address guard (:mod:`scraper.guard`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pipeline.sniff import IMAGE_KINDS, SNIFF_BYTES, VIDEO_KINDS, sniff
from pipeline.storage import Stored, incoming_tempfile, store_bytes, store_file
from pipeline.workspace import CollectionPaths
from scraper.backoff import RetryableStatus, RetryPolicy, is_transient, raise_if_retryable
from scraper.guard import AddressPolicy, GuardedTransport, RefusedAddress, Resolver

USER_AGENT = "nftgan-scraper/0.1"
# Bodies up to SPILL_BYTES stay in memory until they are stored; larger ones spill into a temp file inside
# storage (at 64 downloads at once, at most 128 MiB of buffers). One up to INLINE_BYTES is hashed and
# written on the event loop: for a typical image that is cheaper than a hand-off to a thread, whose GIL
# contention slows every socket call of the loop. Neither is fsynced here: see Outcome.
SPILL_BYTES = 2 * 2**20
INLINE_BYTES = 256 * 2**10


@dataclass(frozen=True)
class DownloadOptions:
    concurrency: int = 16
    per_host_limit: int = 8
    timeout_s: float = 30.0
    max_bytes: int = 50 * 2**20
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    allow_private_hosts: bool = False
    max_redirects: int = 5


@dataclass(frozen=True)
class Outcome:
    """What became of one URL: ``status`` is the catalog status its items get.

    A ``stored`` file is in place but not yet fsynced: call :func:`pipeline.storage.sync_files` on it
    before recording it durably (``scraper.sinks.DownloadTally`` does, once per catalog batch).
    """

    url: str
    status: str  # downloaded | failed | rejected
    stored: Stored | None = None
    reason: str | None = None
    detail: str | None = None
    attempts: int = 0


class Refused(Exception):
    """A final, non-retryable answer about one URL (``status`` failed or rejected)."""

    def __init__(self, reason: str, detail: str, status: str = "failed") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.status = status


class Truncated(Exception):
    """The body ended before its Content-Length: retried like a network error."""


class _Body:
    """One response body: in memory up to ``SPILL_BYTES``, then in a temp file inside storage.

    The temp file, if any, is removed by :meth:`discard` on every path out (``fetch`` calls it in a
    ``finally``), so storage never holds a partial file; a kill -9 leaves a dot-named temp file that the
    next run's ``remove_stale_temps`` deletes.
    """

    def __init__(self, col: CollectionPaths) -> None:
        self.col = col
        self.buffer = bytearray()
        self.path: Path | None = None
        self._file: Any = None
        self.size = 0

    async def restart(self) -> None:
        """Forget what an earlier attempt received."""
        self.buffer.clear()
        self.size = 0
        if self._file is not None:
            await asyncio.to_thread(self._file.truncate, 0)
            self._file.seek(0)

    async def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._file is None and self.size <= SPILL_BYTES:
            self.buffer += chunk
            return
        if self._file is None:
            self.path = await asyncio.to_thread(incoming_tempfile, self.col)
            self._file = await asyncio.to_thread(open, self.path, "wb")  # closed in store() or discard()
            data, self.buffer = bytes(self.buffer) + chunk, bytearray()
        else:
            data = chunk
        await asyncio.to_thread(self._file.write, data)

    @property
    def inline(self) -> bool:
        """Small enough to store on the event loop."""
        return self._file is None and self.size <= INLINE_BYTES

    def store(self) -> Stored:
        """Move the body into content-addressed storage (blocking; unless :attr:`inline`, run it in a thread)."""
        if self._file is None:
            return store_bytes(self.col, self.buffer, sync=False)
        self._file.close()
        self._file = None
        assert self.path is not None
        return store_file(self.col, self.path, move=True)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        self.buffer = bytearray()


class _HostGate:
    """At most ``limit`` requests to one host at once, and a shared pause after a rate limit."""

    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._resume_at = 0.0

    def pause(self, seconds: float) -> None:
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    async def __aenter__(self) -> None:
        await self._slots.acquire()
        while (wait := self._resume_at - time.monotonic()) > 0:
            await asyncio.sleep(wait)

    async def __aexit__(self, *exc: object) -> None:
        self._slots.release()


def _retryable(error: BaseException) -> bool:
    return is_transient(error) or isinstance(error, Truncated)


def _check_kind(head: bytes, content_type: str) -> str:
    kind = sniff(head)
    if kind in IMAGE_KINDS:
        return kind
    if kind in VIDEO_KINDS:
        raise Refused("video-no-poster", f"a {kind} video and no poster image was listed", status="rejected")
    if kind == "empty":
        raise Refused("empty-file", "the server sent 0 bytes")
    label = content_type or "no Content-Type"
    raise Refused(f"not-an-image:{kind}", f"the server sent {kind}, not an image ({label})")


class Downloader:
    """Host gates, HTTP clients and the storage target for a batch of downloads.

    Each worker of :func:`fetch_all` gets its own small client (:meth:`new_client`): httpcore's pool
    bookkeeping grows with the square of its connections, so one shared pool of 64 connections spends
    more CPU on bookkeeping than on downloading, while 64 pools of 2 cost almost nothing.
    """

    def __init__(
        self, col: CollectionPaths, options: DownloadOptions, *, resolver: Resolver | None = None,
    ) -> None:
        self.col = col
        self.options = options
        self._gates: dict[str, _HostGate] = {}
        self._policy = AddressPolicy(options.allow_private_hosts)
        self._resolver = resolver
        self._ssl_context = httpx.create_ssl_context(trust_env=False)
        self._clients: list[httpx.AsyncClient] = []

    def new_client(self) -> httpx.AsyncClient:
        """A client whose connections all pass the address guard (closed with the downloader)."""
        client = httpx.AsyncClient(
            transport=GuardedTransport(
                self._policy, max_connections=2, resolver=self._resolver, ssl_context=self._ssl_context
            ),
            timeout=httpx.Timeout(self.options.timeout_s),
            follow_redirects=True,
            max_redirects=self.options.max_redirects,
            headers={"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.5"},
        )
        self._clients.append(client)
        return client

    async def __aenter__(self) -> "Downloader":
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()

    def _gate(self, url: str) -> _HostGate:
        parsed = httpx.URL(url)
        key = f"{parsed.host}:{parsed.port}"
        if key not in self._gates:
            self._gates[key] = _HostGate(self.options.per_host_limit)
        return self._gates[key]

    async def fetch(self, url: str, client: httpx.AsyncClient | None = None) -> Outcome:
        """Download ``url`` into storage (with retries); never raises for what the server does."""
        client = client or (self._clients[0] if self._clients else self.new_client())
        gate = self._gate(url)
        body = _Body(self.col)
        attempts = 0

        def on_wait(error: BaseException, seconds: float) -> None:
            if isinstance(error, RetryableStatus) and error.rate_limited:
                gate.pause(seconds)

        try:
            async for attempt in self.options.retry.retrying(_retryable, on_wait=on_wait):
                with attempt:
                    attempts += 1
                    async with gate:
                        await self._stream(client, url, body)
            stored = body.store() if body.inline else await asyncio.to_thread(body.store)
            return Outcome(url, "downloaded", stored=stored, attempts=attempts)
        except Refused as e:
            return Outcome(url, e.status, reason=e.reason, detail=e.detail, attempts=attempts)
        except RefusedAddress as e:
            return Outcome(url, "failed", reason=e.reason, detail=e.detail, attempts=attempts)
        except RetryableStatus as e:
            reason = "rate-limited" if e.rate_limited else f"http-{e.status}"
            return Outcome(url, "failed", reason=reason, detail=f"{e} after {attempts} tries", attempts=attempts)
        except httpx.HTTPError as e:
            reason, detail = _transport_reason(e)
            return Outcome(url, "failed", reason=reason, detail=f"{detail} after {attempts} tries", attempts=attempts)
        except Truncated as e:
            return Outcome(url, "failed", reason="truncated", detail=f"{e} after {attempts} tries", attempts=attempts)
        finally:
            body.discard()

    async def _stream(self, client: httpx.AsyncClient, url: str, body: _Body) -> None:
        max_bytes = self.options.max_bytes
        async with client.stream("GET", url) as response:
            raise_if_retryable(response)
            status = response.status_code
            if status != 200:
                raise Refused(f"http-{status}", f"HTTP {status} from {response.url}")
            declared = _content_length(response)
            if declared is not None and declared > max_bytes:
                raise Refused("file-too-large", f"{declared} bytes declared > --max-bytes {max_bytes}")
            content_type = response.headers.get("content-type", "")
            await body.restart()
            head, kind = bytearray(), None
            async for chunk in response.aiter_bytes():
                if body.size + len(chunk) > max_bytes:
                    raise Refused("file-too-large", f"more than --max-bytes {max_bytes} bytes")
                if kind is None:
                    head += chunk[: SNIFF_BYTES - len(head)]
                    if len(head) >= SNIFF_BYTES:
                        kind = _check_kind(bytes(head), content_type)
                await body.add(chunk)
            if kind is None:
                _check_kind(bytes(head), content_type)
            size = body.size
            if declared is not None and "content-encoding" not in response.headers and size != declared:
                raise Truncated(f"got {size} of {declared} bytes")


def _content_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _transport_reason(error: httpx.HTTPError) -> tuple[str, str]:
    if isinstance(error, httpx.TimeoutException):
        return "timeout", f"timed out ({type(error).__name__})"
    if isinstance(error, httpx.RemoteProtocolError):
        text = str(error)
        if "incomplete" in text or "peer closed" in text:
            return "truncated", f"connection closed mid-body: {text}"
        return "protocol-error", text
    if isinstance(error, httpx.TooManyRedirects):
        return "too-many-redirects", str(error)
    if isinstance(error, httpx.UnsupportedProtocol):
        return "bad-scheme", f"redirected to an unsupported scheme: {error}"
    if isinstance(error, httpx.NetworkError):
        return "connection-error", f"{type(error).__name__}: {error}"
    return "http-error", f"{type(error).__name__}: {error}"


async def fetch_all(
    downloader: Downloader,
    urls: Sequence[str],
    on_outcome: Callable[[Outcome], Awaitable[None] | None],
) -> None:
    """Fetch every URL with ``concurrency`` workers; ``on_outcome`` sees each result as it lands."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for url in urls:
        queue.put_nowait(url)

    async def worker() -> None:
        client = downloader.new_client()
        while True:
            try:
                url = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            result = on_outcome(await downloader.fetch(url, client))
            if result is not None:
                await result

    n_workers = max(1, min(downloader.options.concurrency, len(urls)))
    await asyncio.gather(*(worker() for _ in range(n_workers)))
