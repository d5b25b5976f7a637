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
import time
from pathlib import Path

import litserve as ls

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
        self, cfg_yaml: str, secret: bytes, max_batch_size: int, batch_timeout: float, api_path: str
    ):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path=api_path)
        self.cfg_yaml = cfg_yaml
        self.secret = secret

    def setup(self, device):
        import torch
        from omegaconf import OmegaConf

        from dfdetect.predict import Predictor
        from dfdetect.serve.media import restrict_ffmpeg

        restrict_ffmpeg()
        cfg = OmegaConf.create(self.cfg_yaml)
        threads = cfg.serve.get("torch_threads")
        if threads:
            torch.set_num_threads(int(threads))
        self.predictor = Predictor.from_config(cfg)

    def decode_request(self, request: dict):
        started = time.time()
        path, kind = str(request.get("path", "")), str(request.get("kind", ""))
        expected = sign(self.secret, request) if {"path", "kind", "crop", "submitted"} <= set(request) else ""
        if not expected or not hmac.compare_digest(expected, str(request.get("sig", ""))):
            return {
                "prepared": _Refused(path, kind, "decode_error: unsigned request"),
                "crop": False,
                "queue_s": 0.0,
            }
        try:
            prepared = self.predictor.prepare(Path(path), kind or None)
        except Exception as e:  # the predictor promises not to raise; one file must not fail a batch
            prepared = _Refused(path, kind, f"decode_error: {type(e).__name__}")
        return {
            "prepared": prepared,
            "crop": bool(request["crop"]),
            "queue_s": max(0.0, started - float(request["submitted"])),
        }

    def batch(self, inputs):
        return list(inputs)

    def unbatch(self, output):
        return list(output)

    def predict(self, x):
        items = x if isinstance(x, list) else [x]
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
