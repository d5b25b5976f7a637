"""The LitServe side of the gate, run in the inference workers: ``decode_request`` prepares one
file (probe, decode, faces, crops: CPU, per request), ``predict`` scores every prepared file of a
batch in one model pass (LitServe's dynamic batching: ``max_batch_size``, ``batch_timeout``).

Requests come only from the gate's own routes (server.py), which spool the upload to a private
file and submit ``{"path", "kind", "sig", ...}``; the signature (HMAC with a key made at start-up)
keeps anything else from making a worker read a path. Nothing here raises for one bad request
(LitServe would fail its whole batch): a problem becomes that request's ``unknown`` verdict."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import litserve as ls

from dfdetect.serve.batching import BlockingBatchedLoop

CROP_JPEG_QUALITY = 95


def sign(secret: bytes, payload: dict) -> str:
    fields = json.dumps({k: payload[k] for k in ("path", "kind", "crop", "submitted")}, sort_keys=True)
    return hmac.new(secret, fields.encode(), hashlib.sha256).hexdigest()


def largest_face_jpeg(prepared) -> bytes | None:
    """The face crop sent to a recognition API: the first frame of the clip whose face box is the
    largest (the same aligned crop as the attack measurements send, attack/crop.py)."""
    import cv2

    clips = [c for c in getattr(prepared, "clips", []) or [] if len(c.frames)]
    if not clips:
        return None

    def area(clip) -> float:
        x1, y1, x2, y2 = clip.boxes[0][:4]
        return (x2 - x1) * (y2 - y1)

    clip = max(clips, key=area)
    frame = clip.frames[len(clip.frames) // 2]
    ok, data = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, CROP_JPEG_QUALITY])
    return data.tobytes() if ok else None


class _Refused:
    """A request the worker will not prepare (bad signature): answered as a decode error."""

    def __init__(self, path: str, kind: str, why: str):
        self.path, self.kind, self.reason, self.clips, self.n_faces = path, kind, why, [], 0


class GateAPI(ls.LitAPI):
    def __init__(
        self,
        cfg_yaml: str,
        secret: bytes,
        max_batch_size: int,
        batch_timeout: float,
        api_path: str,
        prepare_threads: int = 0,
    ):
        super().__init__(
            max_batch_size=max_batch_size,
            batch_timeout=batch_timeout,
            api_path=api_path,
            loop=BlockingBatchedLoop() if max_batch_size > 1 else "auto",
        )
        self.cfg_yaml = cfg_yaml
        self.secret = secret
        self.prepare_threads = int(prepare_threads)

    def setup(self, device):
        import torch
        from omegaconf import OmegaConf

        from dfdetect.predict import Predictor
        from dfdetect.serve.media import restrict_ffmpeg

        restrict_ffmpeg()
        cfg = OmegaConf.create(self.cfg_yaml)
        if str(device).startswith(("cuda", "mps")):  # LitServe gives each worker its device
            cfg.predict.device = str(device)
        threads = cfg.serve.get("torch_threads")
        if threads:
            torch.set_num_threads(int(threads))
        self.predictor = Predictor.from_config(cfg)
        self.max_video_seconds = cfg.serve.get("max_video_seconds")
        self.max_video_frames = cfg.serve.get("max_video_frames")
        self.pool = ThreadPoolExecutor(self.prepare_threads) if self.prepare_threads > 0 else None
        self.local = threading.local()

    def _video_too_long(self, path: str) -> str:
        """The duration and frame caps, from the container's header (nothing decoded)."""
        from dfdetect.preprocess.media import MediaError, probe_video

        try:
            info = probe_video(path)
        except MediaError:
            return ""  # the face pipeline says what is wrong with it
        seconds = info.n_frames / info.fps if info.fps > 0 else 0.0
        if self.max_video_frames is not None and info.n_frames > int(self.max_video_frames):
            return f"too_large: {info.n_frames} frames, over serve.max_video_frames={self.max_video_frames}"
        if self.max_video_seconds is not None and seconds > float(self.max_video_seconds):
            return (
                f"too_large: {seconds:.1f} s of video, over serve.max_video_seconds={self.max_video_seconds}"
            )
        return ""

    def _prepare(self, path: str, kind: str):
        """The predictor's face pipeline; in a pool thread with that thread's own face detector."""
        if kind == "video":
            too_long = self._video_too_long(path)
            if too_long:
                return _Refused(path, kind, too_long)
        if self.pool is None:
            return self.predictor.prepare(Path(path), kind or None)
        from dfdetect.predict.inputs import InputItem, kind_of
        from dfdetect.predict.prepared import prepare_file
        from dfdetect.preprocess.runner import build_detector

        detector = getattr(self.local, "detector", None)
        if detector is None:
            detector = self.local.detector = build_detector(self.predictor.detector_spec)
        item = InputItem(path, kind or kind_of(path))
        return prepare_file(item, detector, **self.predictor.prepare_options())

    def decode_request(self, request: dict):
        started = time.time()
        path, kind = str(request.get("path", "")), str(request.get("kind", ""))
        expected = sign(self.secret, request) if {"path", "kind", "crop", "submitted"} <= set(request) else ""
        if not expected or not hmac.compare_digest(expected, str(request.get("sig", ""))):
            return {
                "prepared": _Refused(path, kind, "decode_error: unsigned request"),
                "path": path,
                "kind": kind,
                "crop": False,
                "queue_s": 0.0,
            }
        if self.pool is not None:  # the batch's files are prepared side by side, then scored together
            prepared = self.pool.submit(self._prepare, path, kind)
        else:
            prepared = self._resolved(path, kind, lambda: self._prepare(path, kind))
        return {
            "prepared": prepared,
            "path": path,
            "kind": kind,
            "crop": bool(request["crop"]),
            "queue_s": max(0.0, started - float(request["submitted"])),
        }

    @staticmethod
    def _resolved(path: str, kind: str, get):
        try:
            return get()
        except Exception as e:  # the predictor promises not to raise; one file must not fail a batch
            return _Refused(path, kind, f"decode_error: {type(e).__name__}")

    def batch(self, inputs):
        return list(inputs)

    def unbatch(self, output):
        return list(output)

    def predict(self, x):
        items = x if isinstance(x, list) else [x]
        for item in items:
            if isinstance(item["prepared"], Future):
                future = item["prepared"]
                item["prepared"] = self._resolved(item["path"], item["kind"], future.result)
        scorable = [i for i in items if not isinstance(i["prepared"], _Refused)]
        verdicts = iter(self.predictor.score([i["prepared"] for i in scorable]) if scorable else [])
        out = []
        for index, item in enumerate(items):
            prepared = item["prepared"]
            if isinstance(prepared, _Refused):
                record = {
                    "path": prepared.path,
                    "kind": prepared.kind,
                    "verdict": "unknown",
                    "p_fake": None,
                    "reason": prepared.reason,
                    "tracks": [],
                    "timings": {},
                }
            else:
                verdict = next(verdicts)
                record = verdict.record()
                if item["crop"] and verdict.verdict == "real":
                    crop = largest_face_jpeg(prepared)
                    record["_crop_b64"] = base64.b64encode(crop).decode() if crop else None
            record["_serve"] = {
                "queue_s": round(item["queue_s"], 6),
                "batch_size": len(items),
                "batch_index": index,
            }
            out.append(record)
        return out if isinstance(x, list) else out[0]

    def encode_response(self, output) -> dict:
        return output
