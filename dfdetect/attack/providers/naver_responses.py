"""Naver Clova Face Recognition (CFR): ``/vision/v1/celebrity``.

The response holds ``info.faceCount`` and ``faces[].celebrity`` with ``value`` (name) and
``confidence`` (0–1). CFR has no face-similarity API: a ``compare`` call cannot exist, and DHS is
reported as unavailable for Naver, not as 0. Errors: ``{"errorCode", "errorMessage"}`` or the API
gateway's ``{"error": {"errorCode", "message"}}``.
"""

from __future__ import annotations

from dfdetect.attack.records import ApiResult, AttackDataError


def error_code(payload: dict) -> str | None:
    if "errorCode" in payload:
        return str(payload["errorCode"])
    error = payload.get("error")
    if isinstance(error, dict):
        return str(error.get("errorCode") or error.get("code") or "UnknownError")
    return None


def parse(operation: str, payload) -> ApiResult:
    if operation == "compare":
        raise AttackDataError("naver has no face-similarity API: DHS is unavailable for Naver, not 0")
    if not isinstance(payload, dict):
        raise AttackDataError(f"naver recognize: expected a JSON object, got {type(payload).__name__}")
    code = error_code(payload)
    if code is not None:
        return ApiResult("naver", "recognize", "error", error_code=code)
    if "faces" not in payload:
        raise AttackDataError("naver recognize: no faces[] in the response")
    faces = [f["celebrity"] for f in payload["faces"] or [] if f.get("celebrity")]
    if not faces:
        face_count = (payload.get("info") or {}).get("faceCount") or 0
        found = bool(payload["faces"]) or int(face_count) > 0
        return ApiResult("naver", "recognize", "ok" if found else "no_face")
    best = max(faces, key=lambda c: float(c["confidence"]))
    return ApiResult(
        "naver", "recognize", "ok", name=best["value"], confidence=100.0 * float(best["confidence"])
    )
