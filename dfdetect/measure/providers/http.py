"""One HTTP request with ``requests`` turned into an ``Outcome`` (used by the Azure and Naver
clients): 429 / 5xx / timeouts / connection errors / unparseable 200 bodies are transient, 401 /
403 are authentication failures (refused credentials), other 4xx are final client errors carrying
the provider's error code."""

from __future__ import annotations

import json
import threading

import requests

from dfdetect.measure.credentials import error_message, is_auth_failure
from dfdetect.measure.errors import AttackDataError
from dfdetect.measure.providers.base import Outcome, parse_response
from dfdetect.measure.ratelimit import parse_retry_after

BODY_KEEP = 2000


class ThreadSessions:
    """One ``requests.Session`` per worker thread (a session is not guaranteed thread-safe)."""

    def __init__(self):
        self._local = threading.local()
        self._all: list[requests.Session] = []
        self._lock = threading.Lock()

    def get(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            with self._lock:
                self._all.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            for session in self._all:
                session.close()
            self._all.clear()


def send(session: requests.Session, method: str, url: str, timeout: tuple[float, float], **kwargs):
    """(response, None) or (None, transient Outcome) for timeouts and connection failures."""
    try:
        return session.request(method, url, timeout=timeout, **kwargs), None
    except requests.Timeout:
        return None, Outcome.retry("Timeout")
    except requests.ConnectionError:
        return None, Outcome.retry("ConnectionError")


def decode(response: requests.Response):
    """(payload, raw): the JSON body, or (None, {"unparsed_body": ...}) when it is not JSON."""
    try:
        payload = response.json()
        return payload, payload
    except (ValueError, json.JSONDecodeError):
        return None, {"unparsed_body": response.text[:BODY_KEEP], "http_status": response.status_code}


def retry_or_error(response: requests.Response, provider: str, operation: str) -> Outcome | None:
    """An Outcome for a non-2xx response (None for 2xx)."""
    status = response.status_code
    if status < 300:
        return None
    payload, raw = decode(response)
    if status == 429 or status >= 500:
        return Outcome.retry(f"HTTP{status}", raw, parse_retry_after(response.headers.get("Retry-After")))
    if not isinstance(payload, dict):
        payload = {}
    result = parse_response(provider, operation, payload, http_status=status)
    if is_auth_failure(provider, status, result.error_code):
        message = error_message(payload or raw)
        return Outcome(result, raw=raw, auth_failed=True, code=f"HTTP{status}", message=message)
    return Outcome(result, raw=raw)


def parsed(provider: str, operation: str, payload, raw) -> Outcome:
    """A 2xx body: a documented answer, or transient ``MalformedResponse`` (kept in ``raw``)."""
    if payload is None:
        return Outcome.retry("MalformedResponse", raw)
    try:
        return Outcome(parse_response(provider, operation, payload), raw=raw)
    except AttackDataError:
        return Outcome.retry("MalformedResponse", raw)


def outcome(response: requests.Response, provider: str, operation: str) -> Outcome:
    failed = retry_or_error(response, provider, operation)
    if failed is not None:
        return failed
    payload, raw = decode(response)
    return parsed(provider, operation, payload, raw)
