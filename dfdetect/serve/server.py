"""``python serve.py``: the gate on LitServe. The main process checks the pinned model files,
builds the predictor once (a bad config fails here, in one line, before any worker starts) for
``/info``, then starts LitServe's inference workers (each builds its own predictor) and serves the
gate's routes (service.py) and the page (page.py) on LitServe's FastAPI app."""

from __future__ import annotations

import logging
import platform
import secrets
import sys
import time

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from omegaconf import DictConfig, OmegaConf

from dfdetect.serve.media import restrict_ffmpeg

restrict_ffmpeg()  # before anything imports cv2

log = logging.getLogger(__name__)
GATE_PATH = "/v1/_gate"  # LitServe's route for the API: removed, only the gate's routes submit


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("dfdetect", "torch", "litserve", "fastapi", "uvicorn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _forwarder(cfg: DictConfig):
    rec = cfg.serve.recognize
    if not rec.provider:
        return None
    from dfdetect.measure.ratelimit import Backoff
    from dfdetect.serve.forward import Forwarder

    provider_cfg = OmegaConf.to_container(cfg.providers[rec.provider], resolve=True)
    backoff = Backoff(float(rec.backoff_base_s), float(rec.backoff_cap_s), float(rec.max_retry_after_s))
    return Forwarder(
        rec.provider,
        provider_cfg,
        rec.max_cost,
        rec.max_attempts,
        backoff,
        rec.cache,
        check_credentials=bool(rec.get("check_credentials", True)),
    )


def _remove_routes(app, paths: set[str]) -> None:
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in paths]


def build_server(cfg: DictConfig):
    """(LitServer, Gate) ready to ``run``; raises ``UserError`` for what the user must mend."""
    import litserve as ls
    from litserve.server import RegularRequestHandler

    from dfdetect.predict import Predictor
    from dfdetect.serve.audit import AuditLog
    from dfdetect.serve.auth import TRUSTED, ApiKeys
    from dfdetect.serve.gate_api import GateAPI
    from dfdetect.serve.lifecycle import Lifecycle
    from dfdetect.serve.metrics import GateMetrics
    from dfdetect.serve.page import page_html
    from dfdetect.serve.pins import check_pins
    from dfdetect.serve.service import Gate, Limits, without_scores

    s = cfg.serve
    keys = ApiKeys.from_env(s.auth.keys_env, s.auth.trusted_keys_env, bool(s.auth.required))
    digests = check_pins(cfg, s.sha256)
    if s.sha256 is None:
        for path, digest in digests.items():
            log.warning(
                "serve.sha256 is not set: %s has sha256 %s (pin it to refuse a swapped file)", path, digest
            )
    info = Predictor.from_config(cfg).info()
    forwarder = _forwarder(cfg)
    secret = secrets.token_bytes(32)
    cfg_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    api = GateAPI(
        cfg_yaml,
        secret,
        int(s.max_batch_size),
        float(s.batch_timeout),
        api_path=GATE_PATH,
        prepare_threads=int(s.prepare_threads) if int(s.max_batch_size) > 1 else 0,
    )
    server = ls.LitServer(
        api,
        accelerator=str(s.accelerator),
        devices=1 if str(s.accelerator) == "cpu" else "auto",
        workers_per_device=int(s.workers),
        timeout=float(s.request_timeout_s),
        max_payload_size=int(s.max_upload_bytes),
        disable_openapi_url=True,  # no schema or Swagger page for strangers to explore
        restart_workers=True,  # a worker that dies is started again (the watchdog exits if not)
    )
    _remove_routes(server.app, {GATE_PATH, "/", "/info", "/health"})
    handler = RegularRequestHandler(api, server)
    metrics = GateMetrics()
    audit = AuditLog(s.audit_log, redact=forwarder.redact if forwarder else (lambda v: v))
    model = f"{info['model']['name']}@{str(info['model'].get('sha256') or '')[:12]}"
    gate = Gate(
        submit=lambda payload: handler.handle_request(payload, dict),
        secret=secret,
        keys=keys,
        limits=Limits(
            int(s.max_queue),
            float(s.request_timeout_s),
            bool(s.recognize.fail_closed),
            upload_timeout_s=float(s.get("upload_timeout_s") or 30),
            max_per_key=int(s.max_per_key) if s.get("max_per_key") else None,
        ),
        audit=audit,
        metrics=metrics,
        model=model,
        forwarder=forwarder,
        upload_dir=s.upload_dir,
    )
    public_info = {
        **info,
        "files": digests,
        "serve": {
            "max_batch_size": int(s.max_batch_size),
            "batch_timeout": float(s.batch_timeout),
            "workers": int(s.workers),
            "max_queue": int(s.max_queue),
            "max_per_key": int(s.max_per_key) if s.get("max_per_key") else None,
            "upload_timeout_s": float(s.get("upload_timeout_s") or 30),
            "max_upload_bytes": int(s.max_upload_bytes),
            "request_timeout_s": float(s.request_timeout_s),
            "fail_closed": bool(s.recognize.fail_closed),
            "provider": forwarder.provider if forwarder else None,
        },
        "versions": {**dict(info.get("versions") or {}), **_versions()},
    }
    app = server.app
    add_gate_routes(app, gate)
    lifecycle = Lifecycle(server, gate, drain_s=float(s.get("drain_timeout_s") or 30))
    server.dfdetect_lifecycle = lifecycle

    @app.get("/health")
    async def health():
        ok, why = lifecycle.healthy()
        return Response("ok" if ok else why, status_code=200 if ok else 503)

    @app.get("/info")
    async def info_route(request: Request):
        role = gate.authorize(request)
        return JSONResponse(public_info if role == TRUSTED else without_scores(public_info))

    @app.get("/metrics")
    async def metrics_route(request: Request):
        if s.auth.protect_metrics:
            gate.authorize(request)
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.get("/")
    async def page():
        return HTMLResponse(page_html(public_info))

    return server, gate


def add_gate_routes(app, gate) -> None:
    """The two routes that go through the gate: ``/v1/detect`` and ``/v1/recognize``."""

    @app.post("/v1/detect")
    async def detect(request: Request):
        return await gate.handle(request, "detect")

    @app.post("/v1/recognize")
    async def recognize(request: Request):
        return await gate.handle(request, "recognize")


def serve(cfg: DictConfig) -> None:
    server, gate = build_server(cfg)
    s = cfg.serve
    print(
        f"serve: the gate listens on http://{s.host}:{s.port}/ (model {gate.model})",
        file=sys.stderr,
        flush=True,
    )
    server.dfdetect_lifecycle.install()  # SIGTERM/SIGINT: drain, flush, every child down, exit
    try:
        server.run(
            host=str(s.host),
            port=int(s.port),
            num_api_servers=1,
            generate_client_file=False,
            api_server_worker_type="thread",
            log_level=str(s.log_level),
        )
    finally:
        lifecycle = server.dfdetect_lifecycle
        if lifecycle.stopping.locked():  # the lifecycle's stop is under way: it exits the process
            time.sleep(lifecycle.drain_s + 30)
        gate.close()
