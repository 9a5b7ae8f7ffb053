"""Retry policy shared by the API source and the downloader (on tenacity).

Rate limits (429, and the 599 OpenSea's API answers under load) wait for ``Retry-After`` when the server
gives one (seconds or an HTTP date), else back off exponentially with jitter; every wait is capped.
Other 5xx answers and network errors are retried a smaller, bounded number of times.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import tenacity

RATE_LIMIT_STATUSES = frozenset({429, 599})


class RetryableStatus(Exception):
    """An HTTP answer worth retrying (429, 599, other 5xx), with the server's ``Retry-After`` if any."""

    def __init__(self, status: int, retry_after_s: float | None, url: str = "") -> None:
        super().__init__(f"HTTP {status}" + (f" from {url}" if url else ""))
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def rate_limited(self) -> bool:
        return self.status in RATE_LIMIT_STATUSES


def raise_if_retryable(response: httpx.Response) -> None:
    """Raise :class:`RetryableStatus` for a 429 or any 5xx answer (599 included)."""
    status = response.status_code
    if status == 429 or status >= 500:
        raise RetryableStatus(status, parse_retry_after(response.headers.get("retry-after")), str(response.url))


def is_transient(error: BaseException) -> bool:
    """Whether an error is worth another try: a retryable status, a timeout, a dropped connection."""
    return isinstance(
        error, (RetryableStatus, httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
    )


def parse_retry_after(value: str | None, *, now_s: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        import datetime as dt

        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now_s is None else now_s))


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4  # other 5xx and network errors
    rate_limit_retries: int = 8  # 429 / 599
    initial_s: float = 1.0
    max_s: float = 60.0

    def wait_s(self, attempt: int, error: BaseException | None) -> float:
        """Seconds before retry number ``attempt`` (1-based) after ``error``."""
        if isinstance(error, RetryableStatus) and error.retry_after_s is not None:
            return min(self.max_s, error.retry_after_s)
        exponential = self.initial_s * 2 ** (attempt - 1)
        return min(self.max_s, exponential * random.uniform(0.5, 1.0))

    def allows_retry(self, attempt: int, error: BaseException | None) -> bool:
        """Whether another try may follow try number ``attempt`` that failed with ``error``."""
        rate_limited = isinstance(error, RetryableStatus) and error.rate_limited
        limit = self.rate_limit_retries if rate_limited else self.max_retries
        return attempt <= limit

    def retrying(
        self, retry_on: Callable[[BaseException], bool],
        on_wait: Callable[[BaseException, float], None] | None = None,
    ) -> tenacity.AsyncRetrying:
        """A tenacity loop (``async for attempt in policy.retrying(...): with attempt: ...``); the last
        error is re-raised when retries run out."""

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            seconds = self.wait_s(state.attempt_number, error)
            if on_wait is not None and error is not None:
                on_wait(error, seconds)
            return seconds

        def stop(state: tenacity.RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome else None
            return not self.allows_retry(state.attempt_number, error)

        return tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(retry_on), wait=wait, stop=stop, reraise=True,
        )
