"""Raw provider responses → ``ApiResult`` (0–100 scales, ``None`` for "no answer")."""

from __future__ import annotations

from dfdetect.attack.providers import aws_responses, azure_responses, naver_responses
from dfdetect.attack.records import ApiResult, AttackDataError, check_operation, check_provider

_PARSERS = {"aws": aws_responses, "azure": azure_responses, "naver": naver_responses}


def parse_response(provider: str, operation: str, payload, http_status: int | None = None) -> ApiResult:
    """Parse one decoded JSON response (or error body) of ``provider``'s ``operation``.

    ``operation`` is ``recognize`` (celebrity recognition) or ``compare`` (face similarity).
    A payload that is neither a documented response nor a documented error raises
    ``AttackDataError`` naming the provider and operation.
    """
    module = _PARSERS[check_provider(provider)]
    check_operation(operation)
    if http_status is not None and http_status >= 400:
        code = module.error_code(payload) if isinstance(payload, dict) else None
        return ApiResult(provider, operation, "error", error_code=code or f"HTTP{http_status}")
    try:
        return module.parse(operation, payload)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, AttackDataError):
            raise
        raise AttackDataError(f"{provider} {operation}: unexpected response shape ({e!r})") from None


__all__ = ["parse_response"]
