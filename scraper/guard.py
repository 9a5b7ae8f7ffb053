"""The address guard: image URLs come from strangers, so every connection is checked where it is made.

Listings name URLs that anyone can set (an NFT's image URL is the owner's choice), so a URL could point
the downloader at ``http://169.254.169.254/`` (cloud metadata), at a router on the LAN, or at a service on
this machine. The guard sits in the HTTP client's network layer: every TCP connection, including each
hop of a redirect, resolves its host name once, refuses it if any address is loopback, private,
link-local or otherwise not public, and connects to the checked address itself, so a second DNS answer
cannot swap in another one. ``allow_private_hosts`` admits private and loopback addresses (the local
fixture needs it); cloud metadata addresses and multicast stay refused even then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpcore
import httpx

#: cloud metadata services (AWS/GCP/Azure/Oracle, AWS over IPv6, Alibaba, Azure's wire server): refused even
#: when private hosts are allowed
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)

Resolver = Callable[[str, int], Awaitable[list[str]]]


class RefusedAddress(Exception):
    """A connection the guard refused; ``reason`` is the catalog's reason code (``refused-address``)."""

    reason = "refused-address"

    def __init__(self, host: str, detail: str) -> None:
        super().__init__(f"refused {host}: {detail}")
        self.host = host
        self.detail = f"refused {host}: {detail}"


@dataclass(frozen=True)
class AddressPolicy:
    allow_private_hosts: bool = False

    def refusal(self, address: str) -> str | None:
        """Why ``address`` (an IP literal) may not be connected to, or None if it may."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip in METADATA_ADDRESSES:
            return f"{ip} is a cloud metadata address"
        if ip.is_multicast:
            return f"{ip} is a multicast address"
        if self.allow_private_hosts:
            return None
        for label, flag in (
            ("a loopback", ip.is_loopback), ("a link-local", ip.is_link_local), ("an unspecified", ip.is_unspecified),
            ("a private", ip.is_private), ("a reserved", ip.is_reserved), ("a non-public", not ip.is_global),
        ):
            if flag:
                return f"{ip} is {label} address (pass --allow-private-hosts to allow it)"
        return None


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def checked_addresses(host: str, port: int, policy: AddressPolicy, resolver: Resolver) -> list[str]:
    """The addresses of ``host``, all of them allowed by ``policy``, else :class:`RefusedAddress`."""
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        addresses = [host]
    except ValueError:
        try:
            addresses = await resolver(host, port)
        except (OSError, UnicodeError) as e:
            raise httpcore.ConnectError(f"cannot resolve {host}: {e}") from e
    if not addresses:
        raise httpcore.ConnectError(f"{host} has no addresses")
    for address in addresses:
        why = policy.refusal(address)
        if why is not None:  # one bad answer spoils the name: a mixed answer is how rebinding starts
            raise RefusedAddress(host, why)
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to addresses the policy allows (see the module notes)."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver | None = None) -> None:
        self.policy = policy
        self.resolver = resolver or system_resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await checked_addresses(host, port, self.policy, self.resolver)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: typing.Iterable[typing.Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress(path, "unix sockets are never used")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on a :class:`GuardedBackend` (no proxies, no env)."""

    def __init__(
        self, policy: AddressPolicy, *, max_connections: int, resolver: Resolver | None = None,
        keepalive_expiry_s: float = 15.0, ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)  # loading CAs takes ~30 ms
        super().__init__(verify=ssl_context, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=keepalive_expiry_s,
            network_backend=GuardedBackend(policy, resolver),
        )


def check_scheme(url: str, allowed: Iterable[str] = ("http", "https")) -> None:
    scheme = httpx.URL(url).scheme
    if scheme not in allowed:
        raise RefusedAddress(url[:80], f"scheme {scheme or '(none)'!r} is not fetched")


async def check_url_host(url: str, policy: AddressPolicy, resolver: Resolver | None = None) -> None:
    """Check a URL the user gave (``--base-url``) up front, for a clear error before any work."""
    check_scheme(url)
    parsed = httpx.URL(url)
    await checked_addresses(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80), policy,
                            resolver or system_resolver)


def connect_failure(e: BaseException) -> str:
    """A failed connection in a few words, for a one-line error: DNS, refused, TLS, or its own first line.

    Looks through causes, contexts and wrapped errors (httpcore and anyio wrap the OSError they got)."""
    chain: list[BaseException] = []
    todo: list[BaseException] = [e]
    while todo and len(chain) < 16:  # causes and contexts both (a handled error may sit in between)
        seen = todo.pop(0)
        if seen in chain:
            continue
        chain.append(seen)
        todo += [x for x in (seen.__cause__, seen.__context__) if x is not None]
        todo += [a for a in seen.args if isinstance(a, BaseException)]  # httpcore wraps the OSError it got
    if any(isinstance(x, ConnectionRefusedError) for x in chain):
        return "the connection was refused"
    for x in chain:  # anyio groups the attempts: "All connection attempts failed"
        for inner in getattr(x, "exceptions", ()) or ():
            if isinstance(inner, ConnectionRefusedError):
                return "the connection was refused"
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if text.startswith("cannot resolve ") and ": " in text:  # our resolver's wording: keep the OS's reason
        text = text.split(": ", 1)[1]
    low = " ".join(str(x) for x in chain).lower()
    if "resolve" in low or "name or service" in low or "nodename" in low:
        return f"its name does not resolve (DNS: {text[:120]})"
    if "refused" in low:
        return "the connection was refused"
    if "ssl" in low or "certificate" in low or "tls" in low:
        return f"the TLS handshake failed ({text[:120]})"
    return text[:160]
