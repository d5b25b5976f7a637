"""Forwarding a face the gate passed to a celebrity-recognition API through dfdetect's own provider
clients (dfdetect/measure/): the provider's rate limit, retries with backoff on throttling and
transient failures, the cost guard (``max_cost`` USD for the life of the server), and the SQLite
answer cache (a face already answered is never paid for twice). Everything that leaves here is
scrubbed of credential values."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from dfdetect.measure.cache import ApiCache
from dfdetect.measure.cost import BudgetExceeded, CostMeter, tier_cost
from dfdetect.measure.credentials import credential_variables, missing_credentials
from dfdetect.measure.providers.base import CredentialsError
from dfdetect.measure.ratelimit import Backoff, RateLimiter
from dfdetect.measure.redact import Redactor, env_secrets
from dfdetect.measure.registry import build_client, get_provider
from dfdetect.utils.errors import UserError

log = logging.getLogger(__name__)
CROP_PARAMS = {"crop": "serve-largest-face"}


@dataclass
class Forwarded:
    """What the provider said about one face: ``status`` ok / no_face / error (``error_code``), or
    ``cached`` when the cache answered; ``cost_usd`` spent on this request."""

    provider: str
    status: str
    name: str | None = None
    confidence: float | None = None
    error_code: str | None = None
    cached: bool = False
    attempts: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0

    def answer(self) -> dict:
        return {
            "provider": self.provider,
            "status": self.status,
            "name": self.name,
            "confidence": self.confidence,
            "error_code": self.error_code,
            "cached": self.cached,
        }


class Forwarder:
    def __init__(
        self,
        provider: str,
        provider_cfg,
        max_cost: float | None,
        max_attempts: int,
        backoff: Backoff,
        cache_path: str | None,
        sleep=time.sleep,
        check_credentials: bool = True,
    ):
        self.provider = get_provider(provider).name
        client_cfg = dict(provider_cfg["client"])
        missing = missing_credentials(self.provider, client_cfg, ["recognize"]) if check_credentials else []
        if missing:  # the attack runner's hint, with the option that serve.py has
            text = ", ".join(missing).replace("attack.check_credentials", "serve.recognize.check_credentials")
            raise UserError(f"serve.recognize.provider={provider}: set {text}")
        self.limiter = RateLimiter(float(provider_cfg["rate_limit"]), int(provider_cfg["burst"]))
        try:
            self.client = build_client(self.provider, client_cfg, gate=self.limiter.acquire)
        except CredentialsError as e:
            raise UserError(str(e)) from None
        self.redact = Redactor(
            self.client.secrets() + env_secrets(credential_variables(self.provider, client_cfg))
        )
        self.tiers = [list(t) for t in provider_cfg["price_tiers"]]
        self.per_call = get_provider(self.provider).requests_per_call["recognize"]
        self.meter = CostMeter(self.tiers, max_cost)
        self.max_attempts, self.backoff, self.sleep = max(1, int(max_attempts)), backoff, sleep
        self.cache = ApiCache(cache_path) if cache_path else None

    def call_price(self) -> float:
        """USD of one more call at the current monthly volume (what an avoided call saves)."""
        return tier_cost(self.per_call, self.tiers, self.meter.requests)

    def _cached(self, sha: str) -> Forwarded | None:
        if self.cache is None:
            return None
        row = self.cache.get_call(self.provider, "recognize", sha, "", CROP_PARAMS)
        if row is None or row["status"] == "error":
            return None
        return Forwarded(self.provider, row["status"], row["name_raw"], row["confidence"], cached=True)

    def recognize(self, face_jpeg: bytes) -> Forwarded:
        t0 = time.perf_counter()
        sha = hashlib.sha256(face_jpeg).hexdigest()
        found = self._cached(sha)
        if found is not None:
            found.seconds = time.perf_counter() - t0
            return found
        cost, attempts, outcome = 0.0, 0, None
        while True:
            price = self.call_price()
            try:
                self.meter.charge(self.per_call)
                cost += price
            except BudgetExceeded:
                out = Forwarded(self.provider, "error", error_code="budget_exceeded", attempts=attempts)
                break
            attempts += 1
            outcome = self.client.recognize(face_jpeg)
            if outcome.auth_failed:
                self.meter.refund(self.per_call)
                cost -= price
                log.error("%s refused the credentials: %s", self.provider, self.redact(outcome.message))
                out = Forwarded(self.provider, "error", error_code="auth_failed", attempts=attempts)
                break
            if not outcome.transient:
                r = outcome.result
                out = Forwarded(
                    self.provider,
                    r.status,
                    r.name,
                    r.confidence,
                    self.redact(r.error_code) if r.error_code else None,
                    attempts=attempts,
                )
                if self.cache is not None:
                    self.cache.record_call(
                        r, sha, "", CROP_PARAMS, raw=self.redact(outcome.raw), attempts=attempts
                    )
                break
            if attempts >= self.max_attempts:
                out = Forwarded(
                    self.provider,
                    "error",
                    error_code=f"transient:{self.redact(outcome.code)}",
                    attempts=attempts,
                )
                break
            self.sleep(self.backoff.delay(attempts, outcome.retry_after_s))
        out.cost_usd = max(0.0, cost)
        out.seconds = time.perf_counter() - t0
        return out

    def close(self) -> None:
        self.client.close()
        if self.cache is not None:
            self.cache.close()
