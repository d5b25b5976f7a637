"""What every provider client shares: one attempt of one call gives an ``Outcome``; credentials
come from environment variables named in the config (never from the config itself); a decoded
answer becomes an ``ApiResult`` through its provider's parser (``parse_response``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dfdetect.measure.errors import AttackDataError
from dfdetect.measure.records import ApiResult, check_operation
from dfdetect.measure.registry import get_provider

# error_code of a call whose every attempt failed transiently (throttling, 5xx, timeout, malformed
# body): a rerun sends it again, unlike a provider's client error (4xx), which is final
TRANSIENT_PREFIX = "transient:"


class CredentialsError(RuntimeError):
    """A credential the provider needs is not set; the message names the variable, never a value."""


@dataclass
class Outcome:
    """One attempt. ``result`` is final (ok / no_face / client error); a ``transient`` outcome has
    no result and is retried, ``code`` saying what happened. ``auth_failed``: the provider refused
    the credentials (HTTP 401 / 403 or its authentication error code; ``message`` is its error
    message): the runner stops, caches nothing and bills nothing for it."""

    result: ApiResult | None
    raw: Any = None
    transient: bool = False
    code: str | None = None
    retry_after_s: float | None = None
    auth_failed: bool = False
    message: str = ""

    @classmethod
    def retry(cls, code: str, raw=None, retry_after_s: float | None = None) -> Outcome:
        return cls(None, raw=raw, transient=True, code=code, retry_after_s=retry_after_s)


def is_transient_code(error_code: str | None) -> bool:
    return bool(error_code) and str(error_code).startswith(TRANSIENT_PREFIX)


def credentials_from_env(env_names: Mapping[str, str], provider: str) -> dict[str, str]:
    """``{field: value}`` for ``{field: ENV_VAR_NAME}``; a missing variable raises, naming it."""
    values, missing = {}, []
    for field, name in env_names.items():
        value = os.environ.get(str(name), "")
        if not value:
            missing.append(str(name))
        values[field] = value
    if missing:
        raise CredentialsError(f"{provider}: set the environment variable(s) {', '.join(missing)}")
    return values


class ApiClient:
    """``recognize(image)`` and ``compare(fake, real)`` each make one attempt; ``gate`` is called
    before every HTTP request (rate limiting). Billable requests per call: the provider record's
    ``requests_per_call``."""

    provider: str = ""

    def __init__(self, gate: Callable[[], Any] | None = None):
        self.gate = gate or (lambda: None)

    def secrets(self) -> list[str]:
        """Credential values this client holds, so that logs can be scrubbed of them."""
        return []

    def recognize(self, image: bytes) -> Outcome:
        raise NotImplementedError

    def compare(self, fake: bytes, real: bytes) -> Outcome:
        raise NotImplementedError(f"{self.provider} has no face-similarity API")

    def close(self) -> None:
        pass


def parse_response(provider: str, operation: str, payload, http_status: int | None = None) -> ApiResult:
    """Parse one decoded JSON response (or error body) of ``provider``'s ``operation``.

    ``operation`` is ``recognize`` (celebrity recognition) or ``compare`` (face similarity).
    A payload that is neither a documented response nor a documented error raises
    ``AttackDataError`` naming the provider and operation.
    """
    record = get_provider(provider)
    check_operation(operation)
    if http_status is not None and http_status >= 400:
        code = record.error_code(payload) if isinstance(payload, dict) else None
        return ApiResult(provider, operation, "error", error_code=code or f"HTTP{http_status}")
    try:
        return record.parse(operation, payload)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, AttackDataError):
            raise
        raise AttackDataError(f"{provider} {operation}: unexpected response shape ({e!r})") from None
