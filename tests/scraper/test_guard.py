"""The address guard, through the real downloader: every refusal kind, before any byte is sent.

All traffic stays on 127.0.0.1: refused addresses are refused before connecting, and host names are
resolved by a stand-in resolver (no DNS query leaves the machine).
"""

from __future__ import annotations

import asyncio

import pytest

from pipeline.errors import NftganError
from scraper.stage import list_items
from scraper.backoff import RetryPolicy
from scraper.download import Downloader, DownloadOptions, Outcome
from marketplace.fixture import Faults, serve_fixture
from scraper.guard import AddressPolicy

from .conftest import fast_config


def fetch(ws, url: str, *, allow_private: bool, resolver=None) -> Outcome:
    col = ws.collection("g")
    options = DownloadOptions(allow_private_hosts=allow_private, timeout_s=3, retry=RetryPolicy(max_retries=0))

    async def go() -> Outcome:
        async with Downloader(col, options, resolver=resolver) as downloader:
            return await downloader.fetch(url)

    return asyncio.run(go())


def resolving_to(*addresses: str):
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return list(addresses)

    resolver.asked = asked  # type: ignore[attr-defined]
    return resolver


def assert_refused(outcome: Outcome, words: str) -> None:
    assert outcome.status == "failed" and outcome.reason == "refused-address", outcome
    assert words in outcome.detail


def test_loopback_is_refused_unless_private_hosts_are_allowed(ws) -> None:
    with serve_fixture(n_items=2) as fx:
        url = fx.image_url("1")
        assert_refused(fetch(ws, url, allow_private=False), "loopback")
        assert fx.counters["image"] == 0  # refused before connecting
        assert fetch(ws, url, allow_private=True).status == "downloaded"
        assert fx.counters["image"] == 1
        port = fx.base_url.rsplit(":", 1)[1]
        assert_refused(fetch(ws, f"http://[::1]:{port}/cdn/demo/1.png", allow_private=False), "loopback")
        assert_refused(fetch(ws, f"http://[::ffff:127.0.0.1]:{port}/cdn/demo/1.png", allow_private=False), "loopback")


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.10", "172.16.5.4", "[fd12:3456::1]"])
def test_private_addresses_are_refused(ws, address) -> None:
    assert_refused(fetch(ws, f"http://{address}/a.png", allow_private=False), "private")


def test_link_local_and_unspecified_addresses_are_refused(ws) -> None:
    assert_refused(fetch(ws, "http://169.254.10.10/a.png", allow_private=False), "link-local")
    assert_refused(fetch(ws, "http://[fe80::1]/a.png", allow_private=False), "link-local")
    assert_refused(fetch(ws, "http://0.0.0.0/a.png", allow_private=False), "unspecified")


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest/"])
def test_cloud_metadata_is_refused_even_with_private_hosts_allowed(ws, url) -> None:
    assert_refused(fetch(ws, url, allow_private=True), "metadata")


def test_host_names_are_checked_by_what_they_resolve_to(ws) -> None:
    resolver = resolving_to("192.168.1.20")
    assert_refused(fetch(ws, "http://intranet.example/a.png", allow_private=False, resolver=resolver), "private")
    assert resolver.asked == ["intranet.example"]
    # one private answer among public ones spoils the name (how DNS rebinding starts)
    mixed = resolving_to("93.184.216.34", "10.0.0.7")
    assert_refused(fetch(ws, "http://cdn.example/a.png", allow_private=False, resolver=mixed), "private")


def test_public_addresses_pass_the_policy() -> None:
    policy = AddressPolicy(allow_private_hosts=False)
    for address in ("93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"):
        assert policy.refusal(address) is None
    for address in ("127.0.0.1", "10.0.0.1", "100.64.0.1", "224.0.0.1", "::1", "::"):
        assert policy.refusal(address) is not None


def test_a_redirect_into_a_refused_address_is_not_followed(ws) -> None:
    faults = Faults(redirect={"0": "http://169.254.169.254/latest/meta-data/iam", "1": "file:///etc/passwd"})
    with serve_fixture(n_items=4, faults=faults) as fx:
        faults.redirect["2"] = fx.image_url("3")
        assert_refused(fetch(ws, fx.image_url("0"), allow_private=True), "metadata")
        scheme = fetch(ws, fx.image_url("1"), allow_private=True)
        assert (scheme.status, scheme.reason) == ("failed", "bad-scheme")
        followed = fetch(ws, fx.image_url("2"), allow_private=True)  # a redirect to an allowed address works
        assert followed.status == "downloaded"
        assert fx.image_requests["3"] == 1


def test_base_url_on_a_private_host_needs_the_option(ws) -> None:
    with serve_fixture(n_items=1) as fx:
        config = fast_config(fx, source="api", allow_private_hosts=False)
        with pytest.raises(NftganError, match="allow-private-hosts"):
            list_items(ws, "demo", config)
        assert fx.counters["api"] == 0
