"""Microsoft Azure: Computer Vision v3.2 ``models/celebrities/analyze`` and Face verify.

Celebrities: ``result.celebrities[]`` with ``name`` and ``confidence`` (0–1); an empty list means
no celebrity (the model does not say whether a face was found). Face verify returns
``{"isIdentical", "confidence" (0–1)}``; the authors' Find Similar returns a list of
``{"faceId"/"persistedFaceId", "confidence"}`` (an empty list: no similar face). A client whose
Face detect call finds no face records ``ApiResult(status="no_face")`` itself. Errors are
``{"error": {"code", "message", "innererror": {"code"}}}``.
"""

from __future__ import annotations

from dfdetect.attack.records import ApiResult, AttackDataError


def error_code(payload: dict) -> str | None:
    error = payload.get("error")
    if not isinstance(error, dict):
        return None
    inner = error.get("innererror")
    if isinstance(inner, dict) and inner.get("code"):
        return str(inner["code"])
    return str(error.get("code") or "UnknownError")


def parse(operation: str, payload) -> ApiResult:
    if isinstance(payload, dict):
        code = error_code(payload)
        if code is not None:
            return ApiResult("azure", operation, "error", error_code=code)
    if operation == "recognize":
        return _recognize(payload)
    return _compare(payload)


def _recognize(payload) -> ApiResult:
    if not isinstance(payload, dict) or "celebrities" not in (payload.get("result") or {}):
        raise AttackDataError("azure recognize: no result.celebrities in the response")
    celebrities = payload["result"]["celebrities"] or []
    if not celebrities:
        return ApiResult("azure", "recognize", "ok")
    best = max(celebrities, key=lambda c: float(c["confidence"]))
    return ApiResult(
        "azure", "recognize", "ok", name=best["name"], confidence=100.0 * float(best["confidence"])
    )


def _compare(payload) -> ApiResult:
    if isinstance(payload, list):
        if not payload:
            return ApiResult("azure", "compare", "ok")
        return ApiResult(
            "azure", "compare", "ok", similarity=100.0 * max(float(f["confidence"]) for f in payload)
        )
    if isinstance(payload, dict) and "confidence" in payload and "isIdentical" in payload:
        return ApiResult("azure", "compare", "ok", similarity=100.0 * float(payload["confidence"]))
    raise AttackDataError(
        "azure compare: expected a verify result {isIdentical, confidence} or a Find Similar list"
    )
