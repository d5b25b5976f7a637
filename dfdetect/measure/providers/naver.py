"""Naver Clova Face Recognition (CFR): ``/vision/v1/celebrity``.

The client sends the image as multipart field ``image``, the client id and secret in two headers
read from the environment. The response holds ``info.faceCount`` and ``faces[].celebrity`` with
``value`` (name) and ``confidence`` (0–1). CFR has no face-similarity API: there is no ``compare``
call, and DHS is reported as unavailable for Naver, not as 0. Errors: ``{"errorCode",
"errorMessage"}`` or the API gateway's ``{"error": {"errorCode", "message"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping

from dfdetect.measure.errors import AttackDataError
from dfdetect.measure.providers import http
from dfdetect.measure.providers.base import ApiClient, Outcome, credentials_from_env
from dfdetect.measure.records import ApiResult
from dfdetect.measure.registry import Provider, register_provider

DEFAULT_HEADERS = {"X-NCP-APIGW-API-KEY-ID": "NAVER_CLIENT_ID", "X-NCP-APIGW-API-KEY": "NAVER_CLIENT_SECRET"}


class NaverClient(ApiClient):
    provider = "naver"

    def __init__(
        self,
        url: str,
        credential_headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        gate=None,
        **_ignored,
    ):
        super().__init__(gate)
        self._headers = credentials_from_env(dict(credential_headers or DEFAULT_HEADERS), "naver")
        self.url = url
        self.timeout = (float(connect_timeout_s), float(timeout_s))
        self.sessions = http.ThreadSessions()

    def secrets(self) -> list[str]:
        return list(self._headers.values())

    def recognize(self, image: bytes) -> Outcome:
        self.gate()
        response, failed = http.send(
            self.sessions.get(),
            "POST",
            self.url,
            self.timeout,
            headers=self._headers,
            files={"image": ("face.jpg", image, "application/octet-stream")},
        )
        return failed or http.outcome(response, "naver", "recognize")

    def close(self) -> None:
        self.sessions.close()


# ------------------------------------------------------------------------------------- responses
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


def credential_env(client_settings: Mapping) -> dict:
    return {"recognize": tuple(dict(client_settings.get("credential_headers") or DEFAULT_HEADERS).values())}


PROVIDER = register_provider(
    Provider(
        name="naver",
        label="NAV",
        colour="#03c75a",
        client_class=NaverClient,
        parse=parse,
        error_code=error_code,
        requests_per_call={"recognize": 1},  # no compare: no face-similarity API
        confidence_scale=100.0,  # confidences are 0–1
        table2_column="nav",
        credential_env=credential_env,
        # the API gateway's "Authentication Failed" / "Permission Denied" (besides HTTP 401 / 403)
        auth_error_codes=frozenset({"024", "200", "210"}),
    )
)
