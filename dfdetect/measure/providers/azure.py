"""Microsoft Azure: Computer Vision v3.2 ``models/celebrities/analyze`` for recognition; Face
``detect`` on both images, then ``verify`` (or ``findsimilars``) for similarity (3 billable
requests). Keys travel in the ``Ocp-Apim-Subscription-Key`` header, read from the environment.

Celebrities: ``result.celebrities[]`` with ``name`` and ``confidence`` (0–1); an empty list means
no celebrity (the model does not say whether a face was found). Face verify returns
``{"isIdentical", "confidence" (0–1)}``; the authors' Find Similar returns a list of
``{"faceId"/"persistedFaceId", "confidence"}`` (an empty list: no similar face). When Face detect
finds no face the client records ``ApiResult(status="no_face")`` itself. Errors are
``{"error": {"code", "message", "innererror": {"code"}}}``.
"""

from __future__ import annotations

from collections.abc import Mapping

from dfdetect.measure.errors import AttackDataError
from dfdetect.measure.providers import http
from dfdetect.measure.providers.base import ApiClient, Outcome, credentials_from_env
from dfdetect.measure.records import ApiResult
from dfdetect.measure.registry import Provider, register_provider

KEY_HEADER = "Ocp-Apim-Subscription-Key"


class AzureClient(ApiClient):
    provider = "azure"

    def __init__(
        self,
        vision_url: str,
        face_url: str,
        vision_key_env: str = "AZURE_VISION_KEY",
        face_key_env: str = "AZURE_FACE_KEY",
        detect_params: Mapping | None = None,
        similarity: str = "verify",
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        gate=None,
        **_ignored,
    ):
        super().__init__(gate)
        if similarity not in ("verify", "findsimilars"):
            raise ValueError(f"azure similarity must be verify or findsimilars, got {similarity!r}")
        keys = credentials_from_env({"vision": vision_key_env, "face": face_key_env}, "azure")
        self._vision_key, self._face_key = keys["vision"], keys["face"]
        self.vision_url = vision_url
        self.face_url = face_url.rstrip("/")
        self.detect_params = dict(detect_params or {})
        self.similarity = similarity
        self.timeout = (float(connect_timeout_s), float(timeout_s))
        self.sessions = http.ThreadSessions()

    def secrets(self) -> list[str]:
        return [self._vision_key, self._face_key]

    def recognize(self, image: bytes) -> Outcome:
        response, failed = self._send_image(self.vision_url, self._vision_key, image)
        return failed or http.outcome(response, "azure", "recognize")

    def _send_image(self, url: str, key: str, image: bytes, params: Mapping | None = None):
        self.gate()
        return http.send(
            self.sessions.get(),
            "POST",
            url,
            self.timeout,
            headers={KEY_HEADER: key, "Content-Type": "application/octet-stream"},
            data=image,
            params=params,
        )

    def _detect(self, image: bytes) -> tuple[str | None, Outcome | None, object]:
        """(faceId of the largest face or None, a final/transient Outcome to stop with, raw)."""
        response, failed = self._send_image(
            f"{self.face_url}/detect", self._face_key, image, params=self.detect_params
        )
        if failed:
            return None, failed, None
        stop = http.retry_or_error(response, "azure", "compare")
        if stop:
            return None, stop, stop.raw
        payload, raw = http.decode(response)
        if not isinstance(payload, list):
            return None, Outcome.retry("MalformedResponse", raw), raw
        if not payload:
            return None, None, raw
        largest = max(payload, key=lambda f: _area(f.get("faceRectangle") or {}))
        return str(largest["faceId"]), None, raw

    def compare(self, fake: bytes, real: bytes) -> Outcome:
        raw: dict = {}
        ids = {}
        for name, image in (("fake", fake), ("real", real)):
            face_id, stop, raw[f"detect_{name}"] = self._detect(image)
            if stop is not None:
                stop.raw = raw
                return stop
            if face_id is None:
                return Outcome(ApiResult("azure", "compare", "no_face"), raw=raw)
            ids[name] = face_id
        if self.similarity == "verify":
            body = {"faceId1": ids["real"], "faceId2": ids["fake"]}
        else:
            body = {"faceId": ids["real"], "faceIds": [ids["fake"]], "mode": "matchFace"}
        self.gate()
        response, failed = http.send(
            self.sessions.get(),
            "POST",
            f"{self.face_url}/{self.similarity}",
            self.timeout,
            headers={KEY_HEADER: self._face_key},
            json=body,
        )
        if failed:
            failed.raw = raw
            return failed
        out = http.outcome(response, "azure", "compare")
        raw[self.similarity] = out.raw
        out.raw = raw
        return out

    def close(self) -> None:
        self.sessions.close()


def _area(rect: Mapping) -> float:
    return float(rect.get("width", 0)) * float(rect.get("height", 0))


# ------------------------------------------------------------------------------------- responses
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


def compare_params(client_settings: Mapping) -> dict:
    """Verify and Find Similar answer differently."""
    return {"method": str(client_settings["similarity"])}


def credential_env(client_settings: Mapping) -> dict:
    """Recognition authenticates with the Computer Vision key, similarity with the Face key."""
    return {
        "recognize": (str(client_settings.get("vision_key_env") or "AZURE_VISION_KEY"),),
        "compare": (str(client_settings.get("face_key_env") or "AZURE_FACE_KEY"),),
    }


PROVIDER = register_provider(
    Provider(
        name="azure",
        label="MS",
        colour="#0078d4",
        client_class=AzureClient,
        parse=parse,
        error_code=error_code,
        requests_per_call={"recognize": 1, "compare": 3},  # compare: detect twice, then verify
        confidence_scale=100.0,  # confidences are 0–1
        table2_column="ms",
        compare_params=compare_params,
        credential_env=credential_env,
    )
)
