"""Amazon Rekognition: RecognizeCelebrities and CompareFaces.

RecognizeCelebrities returns ``CelebrityFaces[]`` (``Name``, ``MatchConfidence`` 0–100) and
``UnrecognizedFaces[]``; CompareFaces returns ``FaceMatches[]`` (``Similarity`` 0–100) and
``UnmatchedFaces[]`` (faces below ``SimilarityThreshold``, 80 by default: call it with
``SimilarityThreshold=0`` to get a similarity for every face). Errors arrive as
``{"Error": {"Code": ...}}`` (botocore) or ``{"__type": "...#Code"}`` (raw HTTP).
CompareFaces answers ``InvalidParameterException`` when either image has no face.
"""

from __future__ import annotations

from dfdetect.attack.records import ApiResult, AttackDataError

NO_FACE_ERRORS = {"compare": {"InvalidParameterException"}, "recognize": set()}


def error_code(payload: dict) -> str | None:
    if isinstance(payload.get("Error"), dict):
        return str(payload["Error"].get("Code") or "UnknownError")
    if "__type" in payload:
        return str(payload["__type"]).rsplit("#", 1)[-1]
    return None


def parse(operation: str, payload) -> ApiResult:
    if not isinstance(payload, dict):
        raise AttackDataError(f"aws {operation}: expected a JSON object, got {type(payload).__name__}")
    code = error_code(payload)
    if code is not None:
        status = "no_face" if code in NO_FACE_ERRORS[operation] else "error"
        return ApiResult("aws", operation, status, error_code=code)
    if operation == "recognize":
        return _recognize(payload)
    return _compare(payload)


def _recognize(payload: dict) -> ApiResult:
    if "CelebrityFaces" not in payload and "UnrecognizedFaces" not in payload:
        raise AttackDataError("aws recognize: neither CelebrityFaces nor UnrecognizedFaces in the response")
    celebrities = payload.get("CelebrityFaces") or []
    if celebrities:
        best = max(celebrities, key=lambda c: float(c["MatchConfidence"]))
        return ApiResult("aws", "recognize", "ok", name=best["Name"], confidence=best["MatchConfidence"])
    status = "ok" if payload.get("UnrecognizedFaces") else "no_face"
    return ApiResult("aws", "recognize", status)


def _compare(payload: dict) -> ApiResult:
    if "FaceMatches" not in payload and "UnmatchedFaces" not in payload:
        raise AttackDataError("aws compare: neither FaceMatches nor UnmatchedFaces in the response")
    matches = payload.get("FaceMatches") or []
    if matches:
        return ApiResult("aws", "compare", "ok", similarity=max(float(m["Similarity"]) for m in matches))
    status = "ok" if payload.get("UnmatchedFaces") else "no_face"
    return ApiResult("aws", "compare", status)
