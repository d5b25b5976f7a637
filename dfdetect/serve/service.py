"""The gate's HTTP routes (FastAPI, on LitServe's app): API keys, admission (a bounded number of
requests in flight; the next gets 503), the upload spooled and typed by its bytes, the verdict from
LitServe's batching workers under a per-request deadline, forwarding for ``/v1/recognize``, the
audit log and the metrics. LitServe's own route for its API is removed: only these routes, which
sign what they submit, reach the workers."""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from dfdetect.serve.audit import AuditLog
from dfdetect.serve.auth import TRUSTED, ApiKeys, key_hash
from dfdetect.serve.gate_api import sign
from dfdetect.serve.media import UnsupportedMedia, spool
from dfdetect.serve.metrics import GateMetrics

log = logging.getLogger(__name__)
HIDDEN_FOR_UNTRUSTED = ("p_fake", "threshold", "temperature")
NON_CELEBRITY = "non-celebrity"


def without_scores(value):
    """The record an untrusted key sees: no P(fake) anywhere (file, tracks, clips)."""
    if isinstance(value, dict):
        return {k: without_scores(v) for k, v in value.items() if k not in HIDDEN_FOR_UNTRUSTED}
    if isinstance(value, list):
        return [without_scores(v) for v in value]
    return value


def reason_code(reason: str) -> str:
    return str(reason or "").split(":", 1)[0] or "none"


@dataclass
class Limits:
    max_queue: int
    request_timeout_s: float
    fail_closed: bool
    # the whole upload must arrive within this (408), so slow senders cannot hold admission slots
    upload_timeout_s: float = 30.0
    # requests one key may have admitted at once (429); None: only max_queue
    max_per_key: int | None = None


class Gate:
    def __init__(
        self,
        submit,
        secret: bytes,
        keys: ApiKeys,
        limits: Limits,
        audit: AuditLog,
        metrics: GateMetrics,
        model: str,
        forwarder=None,
        upload_dir: str | None = None,
    ):
        self.submit, self.secret, self.keys, self.limits = submit, secret, keys, limits
        self.audit, self.metrics, self.model, self.forwarder = audit, metrics, model, forwarder
        self.own_upload_dir = not upload_dir
        self.upload_dir = Path(upload_dir or tempfile.mkdtemp(prefix="dfdetect-serve-"))
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self.in_flight = 0
        self.per_key: dict[str, int] = {}
        self.draining = False  # set on SIGTERM/SIGINT: new requests get 503, admitted ones finish
        self.redact = forwarder.redact if forwarder is not None else (lambda v: v)

    def close(self) -> None:
        self.audit.close()
        if self.forwarder is not None:
            self.forwarder.close()
        if self.own_upload_dir:
            shutil.rmtree(self.upload_dir, ignore_errors=True)

    # ------------------------------------------------------------------ the request's steps
    def authorize(self, request: Request) -> str:
        role = self.keys.role(request.headers.get("x-api-key"))
        if role is None:
            raise HTTPException(401, "missing or unknown API key (X-API-Key header)")
        return role

    async def upload(self, request: Request):
        try:
            return await asyncio.wait_for(self._upload(request), self.limits.upload_timeout_s)
        except asyncio.TimeoutError:
            raise HTTPException(
                408,
                f"the upload did not arrive within serve.upload_timeout_s={self.limits.upload_timeout_s:g} s",
            ) from None

    async def _upload(self, request: Request):
        form = await request.form(max_files=1, max_fields=4)
        media = form.get("file")
        if media is None or isinstance(media, str):
            raise HTTPException(400, "send the image or video as the multipart field 'file'")
        try:
            return await run_in_threadpool(spool, media.file, self.upload_dir)
        except UnsupportedMedia as e:
            raise HTTPException(415, str(e)) from None
        finally:
            await media.close()

    async def verdict(self, upload, crop: bool) -> dict:
        payload = {
            "path": str(upload.path),
            "kind": upload.media.kind,
            "crop": crop,
            "submitted": time.time(),
        }
        payload["sig"] = sign(self.secret, payload)
        try:
            return await asyncio.wait_for(self.submit(payload), self.limits.request_timeout_s)
        except asyncio.TimeoutError:
            raise HTTPException(
                504, f"no verdict within the deadline ({self.limits.request_timeout_s:g} s)"
            ) from None

    # ------------------------------------------------------------------ the endpoints
    async def handle(self, request: Request, endpoint: str) -> JSONResponse:
        t0 = time.perf_counter()
        request_id = uuid.uuid4().hex
        entry = {"request_id": request_id, "endpoint": endpoint, "model": self.model, "forwarded": False}
        status, outcome, reason = 500, "error", "internal"
        admitted = False
        key_id = None
        try:
            role = self.authorize(request)
            entry["key"] = key_id = (
                key_hash(request.headers.get("x-api-key", "")) if request.headers.get("x-api-key") else None
            )
            if endpoint == "recognize" and self.forwarder is None:
                raise HTTPException(503, "no recognition provider configured (serve.recognize.provider)")
            if self.draining:
                raise HTTPException(503, "the gate is shutting down", headers={"Retry-After": "1"})
            if self.in_flight >= self.limits.max_queue:
                self.metrics.rejected.inc()
                raise HTTPException(503, "the gate is at capacity; retry later", headers={"Retry-After": "1"})
            if self.limits.max_per_key and self.per_key.get(key_id, 0) >= self.limits.max_per_key:
                self.metrics.rejected.inc()
                raise HTTPException(
                    429,
                    f"this key already has {self.limits.max_per_key} requests in flight (serve.max_per_key)",
                    headers={"Retry-After": "1"},
                )
            self.in_flight += 1
            self.per_key[key_id] = self.per_key.get(key_id, 0) + 1
            self.metrics.in_flight.inc()
            admitted = True
            t_up = time.perf_counter()
            upload = await self.upload(request)
            upload_s = time.perf_counter() - t_up
            self.metrics.stage.labels("upload").observe(upload_s)
            entry.update(media_sha256=upload.sha256, media_bytes=upload.size, media_type=upload.media.name)
            try:
                record = await self.verdict(upload, crop=endpoint == "recognize")
            finally:
                upload.remove()
            serve_info = record.pop("_serve", {})
            crop_b64 = record.pop("_crop_b64", None)
            record.pop("path", None)
            record.pop("label", None)
            record.pop("cached", None)
            record["reason"] = self.public_reason(record.get("reason") or "", upload.path)
            self.metrics.observe_verdict(
                record,
                serve_info
                if serve_info.get("batch_index") == 0
                else {"queue_s": serve_info.get("queue_s", 0.0)},
                trusted=role == TRUSTED,
            )
            record["timings"] = {
                "upload": round(upload_s, 4),
                "queue": round(float(serve_info.get("queue_s", 0.0)), 4),
                **(record.get("timings") or {}),
            }
            body = {"request_id": request_id, **record}
            entry.update(
                verdict=record["verdict"],
                p_fake=record.get("p_fake"),
                reason=record.get("reason", ""),
                timings=record.get("timings"),
                queue_s=serve_info.get("queue_s"),
            )
            outcome, reason = record["verdict"], reason_code(record.get("reason"))
            if endpoint == "recognize":
                body, status = await self.recognize(record, crop_b64, entry)
                body["request_id"] = request_id
                outcome = body["answer"] if status == 200 else "error"
            else:
                status = 200
            if role != TRUSTED:
                body = without_scores(body)
            return JSONResponse(self.redact(body), status_code=status)
        except HTTPException as e:
            status, outcome, reason = e.status_code, "error", f"http_{e.status_code}"
            raise
        finally:
            if admitted:
                self.in_flight -= 1
                self.per_key[key_id] -= 1
                if not self.per_key[key_id]:
                    del self.per_key[key_id]
                self.metrics.in_flight.dec()
            seconds = time.perf_counter() - t0
            self.metrics.requests.labels(endpoint, outcome, reason).inc()
            self.metrics.latency.labels(endpoint).observe(seconds)
            entry.update(status=status, seconds=round(seconds, 6))
            try:
                self.audit.write(entry)
            except OSError as e:
                log.error("audit log: %s", e)

    def public_reason(self, reason: str, path: Path) -> str:
        """The reason without the server's file system: the spooled upload is "the upload"."""
        for text in (str(path), path.name, str(self.upload_dir)):
            reason = reason.replace(text, "upload")
        return reason

    async def recognize(self, record: dict, crop_b64: str | None, entry: dict) -> tuple[dict, int]:
        """The gate first: only a ``real`` verdict sends the face to the provider."""
        gate = {
            k: record.get(k)
            for k in (
                "verdict",
                "p_fake",
                "threshold",
                "reason",
                "model",
                "n_faces",
                "tracks",
                "timings",
                "kind",
            )
        }
        verdict = record["verdict"]
        provider = self.forwarder.provider if self.forwarder else None
        body = {"gate": gate, "forwarded": False, "provider": provider, "provider_answer": None}
        entry.update(forwarded=False, provider=provider, provider_status=None)
        if verdict != "real" and (verdict == "fake" or self.limits.fail_closed or not crop_b64):
            why = "gate_fake" if verdict == "fake" else "gate_unknown"
            self.metrics.provider_avoided.labels(provider, why).inc()
            self.metrics.provider_saved.labels(provider).inc(self.forwarder.call_price())
            detail = record.get("reason") or f"the gate judged the face {verdict}"
            body.update(answer=NON_CELEBRITY, reason=f"not forwarded: {verdict} ({detail})")
            return body, 200
        if not crop_b64:
            body.update(answer=NON_CELEBRITY, reason="not forwarded: no face crop to send")
            return body, 200
        answer = await run_in_threadpool(self.forwarder.recognize, base64.b64decode(crop_b64))
        self.metrics.stage.labels("provider").observe(answer.seconds)
        if answer.cached:
            self.metrics.provider_avoided.labels(provider, "cache").inc()
            self.metrics.provider_saved.labels(provider).inc(self.forwarder.call_price())
        else:
            self.metrics.provider_calls.labels(provider, answer.status).inc(answer.attempts)
            self.metrics.provider_cost.labels(provider).inc(answer.cost_usd)
        entry.update(
            forwarded=not answer.cached,
            provider_status=answer.status,
            provider_cached=answer.cached,
            provider_error=answer.error_code,
            cost_usd=round(answer.cost_usd, 6),
        )
        body.update(forwarded=not answer.cached, provider_answer=answer.answer())
        if answer.status == "error":
            if not self.limits.fail_closed:
                raise HTTPException(502, f"{provider} failed: {answer.error_code}")
            body.update(answer=NON_CELEBRITY, reason=f"provider failed ({answer.error_code}); fail-closed")
            return body, 200
        if answer.status == "no_face" or not answer.name:
            body.update(answer=NON_CELEBRITY, reason=f"{provider} named no celebrity")
        else:
            body.update(answer="celebrity", name=answer.name, confidence=answer.confidence, reason="")
        return body, 200
