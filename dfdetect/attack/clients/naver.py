"""Naver Clova Face Recognition (CFR) ``/vision/v1/celebrity``: the image as multipart field
``image``, the client id and secret in two headers read from the environment. CFR has no
face-similarity API, so there is no ``compare`` (DHS is unavailable for Naver, never 0)."""

from __future__ import annotations

from collections.abc import Mapping

from dfdetect.attack.clients import http
from dfdetect.attack.clients.base import ApiClient, Outcome, credentials_from_env

DEFAULT_HEADERS = {"X-NCP-APIGW-API-KEY-ID": "NAVER_CLIENT_ID", "X-NCP-APIGW-API-KEY": "NAVER_CLIENT_SECRET"}


class NaverClient(ApiClient):
    provider = "naver"
    has_similarity = False

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
