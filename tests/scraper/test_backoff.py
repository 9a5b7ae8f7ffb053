from __future__ import annotations

import asyncio
import email.utils

import pytest
import tenacity

from scraper.backoff import RetryableStatus, RetryPolicy, parse_retry_after


def test_retry_after_in_seconds_or_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now_s=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now_s=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") == 0.0


def test_waits_honour_retry_after_back_off_exponentially_and_are_capped() -> None:
    policy = RetryPolicy(initial_s=1.0, max_s=10.0)
    assert policy.wait_s(1, RetryableStatus(429, 3.0)) == 3.0
    assert policy.wait_s(1, RetryableStatus(429, 3600.0)) == 10.0  # a server asking for an hour gets the cap
    assert 0.5 <= policy.wait_s(1, RetryableStatus(500, None)) <= 1.0
    assert 4.0 <= policy.wait_s(4, ConnectionError()) <= 8.0
    assert policy.wait_s(30, ConnectionError()) <= 10.0


def test_rate_limits_get_more_retries_than_server_errors() -> None:
    policy = RetryPolicy(max_retries=2, rate_limit_retries=5)
    assert policy.allows_retry(2, RetryableStatus(500, None)) and not policy.allows_retry(3, RetryableStatus(500, None))
    assert policy.allows_retry(5, RetryableStatus(599, None)) and not policy.allows_retry(6, RetryableStatus(429, None))


def test_retrying_loop_reraises_the_last_error_and_retries_only_what_it_should() -> None:
    policy = RetryPolicy(max_retries=2, initial_s=0.0, max_s=0.0)

    async def count_tries(error: Exception) -> int:
        calls = 0
        with pytest.raises(type(error)):
            async for attempt in policy.retrying(lambda e: isinstance(e, RetryableStatus)):
                with attempt:
                    calls += 1
                    raise error
        return calls

    assert asyncio.run(count_tries(RetryableStatus(503, None))) == 3
    assert asyncio.run(count_tries(ValueError("not retryable"))) == 1
    assert isinstance(policy.retrying(lambda e: True), tenacity.AsyncRetrying)
