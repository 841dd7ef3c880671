"""The one retry and rate policy for ERP calls (tenacity, requests-ratelimiter).

Connection errors, timeouts, 429 and 5xx are retried (a refused TLS certificate
is not: it fails the same way every time) with exponential backoff
and jitter, honouring ``Retry-After``, at most 5 attempts and 2 minutes; after
the last attempt the error is re-raised as it is, so the user sees the ERP's
own failure.  ``[erp] requests_per_second`` caps the request rate of every
adapter's HTTP session (SOAP and JSON-RPC included).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import requests
import tenacity
from requests_ratelimiter import LimiterAdapter

from crm_bridge.errors import RetriableErpError, from_tls

T = TypeVar("T")
ATTEMPTS = 5
MAX_DELAY = 60.0


_BACKOFF = tenacity.wait_exponential_jitter(multiplier=0.5, max=20)


def _wait(state: tenacity.RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RetriableErpError) and error.retry_after is not None:
        return min(max(error.retry_after, 0.0), MAX_DELAY)
    return float(_BACKOFF(state))


def retrying(attempts: int = ATTEMPTS, sleep: Callable[[float], None] | None = None) -> Any:
    """A tenacity ``Retrying`` for one ERP call; ``sleep`` is patched in tests."""
    kwargs: dict[str, Any] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RetriableErpError),
        wait=_wait,
        stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(MAX_DELAY * 2),
        reraise=True,
        **kwargs,
    )


def call(fn: Callable[[], T], sleep: Callable[[float], None] | None = None) -> T:
    """Run ``fn`` under the retry policy."""
    result: T = retrying(sleep=sleep)(fn)
    return result


def limit_rate(session: requests.Session, per_second: float | None) -> None:
    """Cap the requests ``session`` sends per second (all threads together)."""
    if per_second:
        adapter = LimiterAdapter(per_second=per_second)
        session.mount("http://", adapter)
        session.mount("https://", adapter)


@contextmanager
def transport_errors(where: str, action: str, timeout: float) -> Iterator[None]:
    """A request's broken connection, timeout or truncated answer as a retriable
    error; a TLS failure (certificate refused) as a :class:`TlsError`, not retried."""
    try:
        yield
    except requests.Timeout:
        raise RetriableErpError(
            f"{where} did not answer {action} in {timeout:.0f}s",
            hint="check the ERP's load or raise erp.timeout",
        ) from None
    except requests.exceptions.SSLError as exc:  # a refused certificate: never retried
        raise from_tls(where, exc) from None
    except requests.ConnectionError:
        raise RetriableErpError(
            f"cannot reach {where} ({action})",
            hint="check erp.url and that the ERP is running; crm-bridge retried",
        ) from None
    except requests.exceptions.ChunkedEncodingError:
        raise RetriableErpError(
            f"{where} sent an incomplete answer to {action}",
            hint="check the network and the ERP's logs; crm-bridge retried",
        ) from None
