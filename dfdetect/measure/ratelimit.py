"""Pace and retry requests: a thread-safe token bucket (requests per second) and exponential
backoff with full jitter that honours a server's Retry-After."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass


class RateLimiter:
    """At most ``rate`` requests per second on average, ``burst`` at once (``rate`` <= 0: no limit)."""

    def __init__(self, rate: float, burst: int = 1, clock=time.monotonic, sleep=time.sleep):
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self._clock, self._sleep = clock, sleep
        self._tokens = float(self.burst)
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a request may go; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass(frozen=True)
class Backoff:
    """Delay before retry ``attempt`` (1 = the first retry): uniform in [0, min(cap, base * 2^(attempt-1))],
    but never shorter than the server's Retry-After (itself capped at ``max_retry_after_s``)."""

    base_s: float = 1.0
    cap_s: float = 30.0
    max_retry_after_s: float = 120.0
    jitter: bool = True

    def delay(self, attempt: int, retry_after_s: float | None = None, rng=random) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** max(attempt - 1, 0))
        delay = rng.uniform(0.0, ceiling) if self.jitter else ceiling
        if retry_after_s is not None:
            delay = max(delay, min(float(retry_after_s), self.max_retry_after_s))
        return delay


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (a number; an HTTP date is ignored), or None."""
    if value is None:
        return None
    try:
        return max(0.0, float(str(value).strip()))
    except ValueError:
        return None
