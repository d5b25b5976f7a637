"""Loopback stand-ins for the celebrity APIs, speaking real HTTP with response shapes from each
provider's reference: Naver CFR, Azure Computer Vision v3.2 + Face, and an AWS front that answers
RecognizeCelebrities itself (moto has no such operation) and passes CompareFaces on to moto's
``ThreadedMotoServer``. Each counts requests per (operation, image sha256) and injects faults
scripted per image: ``429`` (with Retry-After), ``500``, ``timeout``, ``malformed`` (a 200 body that
is not JSON), ``400`` (a client error: the image is refused). A wrong key gets 401 (Azure, Naver) or
``UnrecognizedClientException`` (the AWS front, when ``aws_access_key`` is set); with ``echo_key``
the error messages repeat the key received, as some providers do."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import requests


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeWorld:
    """What the fake APIs know: ``celebrities[sha] = (name, confidence 0–1)``, ``no_face`` shas,
    ``faults[(op, sha)] = [fault, ...]`` consumed one per request, and the counts of requests."""

    def __init__(self, keys: dict[str, str] | None = None, retry_after: str = "0.2", hang_s: float = 1.0):
        self.celebrities: dict[str, tuple[str, float]] = {}
        self.no_face: set[str] = set()
        self.faults: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.counts: Counter = Counter()
        self.headers_seen: list[dict] = []
        self.keys = dict(keys or {})
        self.aws_access_key: str | None = None  # the AWS front checks the signature's key id
        self.echo_key = False  # error messages repeat the key the request carried
        self.retry_after = retry_after
        self.hang_s = hang_s
        self.delay_s = 0.0
        self.on_request = None  # callable(op, sha, total) run before answering
        self.lock = threading.Lock()
        self.face_ids: dict[str, str] = {}

    def hit(self, op: str, key: str) -> str | None:
        """Count the request; the fault to play for it, if any."""
        with self.lock:
            self.counts[(op, key)] += 1
            total = sum(self.counts.values())
            fault = self.faults[(op, key)].pop(0) if self.faults.get((op, key)) else None
        if self.on_request is not None:
            self.on_request(op, key, total)
        if self.delay_s:
            time.sleep(self.delay_s)
        return fault

    def face_id(self, image_sha: str) -> str:
        face_id = str(uuid.uuid5(uuid.NAMESPACE_OID, image_sha))
        self.face_ids[face_id] = image_sha
        return face_id

    def similarity(self, sha_a: str, sha_b: str) -> float:
        """Deterministic, in [0.05, 0.95]: equal names are similar."""
        names = [self.celebrities.get(s, ("", 0))[0] for s in (sha_a, sha_b)]
        base = 0.9 if names[0] and names[0] == names[1] else 0.3
        return round(base + (int(sha_a[:4], 16) % 50) / 1000, 4)


class _Handler(BaseHTTPRequestHandler):
    world: FakeWorld
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status: int, payload, headers: dict | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def play(self, fault: str | None, throttle_body, error_body, bad_request_body=None) -> bool:
        """Answer with the fault (True) or let the handler answer (False)."""
        if fault is None:
            return False
        if fault == "400":
            self.reply(400, bad_request_body or {"message": f"invalid image{self.echo()}"})
        elif fault == "429":
            self.reply(429, throttle_body, {"Retry-After": self.world.retry_after})
        elif fault == "500":
            self.reply(500, error_body)
        elif fault == "timeout":
            time.sleep(self.world.hang_s)
            self.reply(200, b"{}")
        elif fault == "malformed":
            self.reply(200, b"<html>upstream proxy error</html>")
        else:
            raise ValueError(f"unknown fault {fault!r}")
        return True

    def keys_ok(self) -> bool:
        self.world.headers_seen.append(dict(self.headers))
        return all(self.headers.get(h) == v for h, v in self.world.keys.items())

    def echo(self) -> str:
        """`` <key>`` (the credential header values received) when the world echoes keys."""
        if not self.world.echo_key:
            return ""
        sent = [self.headers.get(h, "") for h in self.world.keys] or [self.headers.get("Authorization", "")]
        return " " + " ".join(sent)


# ------------------------------------------------------------------------------------------- Naver
class NaverHandler(_Handler):
    def do_POST(self):
        body = self.body()
        if not self.keys_ok():
            return self.reply(
                401, {"errorCode": "024", "errorMessage": f"Authentication failed{self.echo()}"}
            )
        message = BytesParser().parsebytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body
        )
        image = next(
            (
                p.get_payload(decode=True)
                for p in message.get_payload()
                if p.get_param("name", header="content-disposition") == "image"
            ),
            None,
        )
        if image is None:
            return self.reply(400, {"errorCode": "ER01", "errorMessage": "image is required"})
        key = sha(image)
        fault = self.world.hit("recognize", key)
        if self.play(
            fault,
            {"error": {"errorCode": "429", "message": "Too Many Requests"}},
            {"errorCode": "500", "errorMessage": "Internal error"},
            {"errorCode": "ER03", "errorMessage": f"invalid image{self.echo()}"},
        ):
            return None
        size = {"width": 240, "height": 240}
        if key in self.world.no_face:
            return self.reply(200, {"info": {"size": size, "faceCount": 0}, "faces": []})
        name, conf = self.world.celebrities.get(key, ("", 0.0))
        faces = [{"celebrity": {"value": name, "confidence": conf}}] if name else []
        return self.reply(200, {"info": {"size": size, "faceCount": 1}, "faces": faces})


# ------------------------------------------------------------------------------------------- Azure
_AZ_THROTTLE = {"error": {"code": "429", "message": "Rate limit is exceeded. Try again later."}}
_AZ_500 = {"error": {"code": "InternalServerError", "message": "An unexpected error occurred."}}
_RECT = {"left": 60, "top": 50, "width": 120, "height": 130}


class AzureHandler(_Handler):
    def do_POST(self):
        body = self.body()
        path = urlsplit(self.path).path
        if not self.keys_ok():
            message = f"Access denied due to invalid subscription key{self.echo()}."
            return self.reply(401, {"error": {"code": "401", "message": message}})
        bad_image = {
            "error": {"code": "InvalidImage", "message": f"Input data is not a valid image{self.echo()}"}
        }
        if path.endswith("/models/celebrities/analyze"):
            key = sha(body)
            if self.play(self.world.hit("recognize", key), _AZ_THROTTLE, _AZ_500, bad_image):
                return None
            if key in self.world.no_face:
                celebrities = []
            else:
                name, conf = self.world.celebrities.get(key, ("", 0.0))
                celebrities = [{"name": name, "confidence": conf, "faceRectangle": _RECT}] if name else []
            return self.reply(
                200,
                {
                    "result": {"celebrities": celebrities},
                    "requestId": str(uuid.uuid4()),
                    "metadata": {"height": 240, "width": 240, "format": "Jpeg"},
                    "modelVersion": "2021-05-01",
                },
            )
        if path.endswith("/detect"):
            key = sha(body)
            if self.play(self.world.hit("detect", key), _AZ_THROTTLE, _AZ_500, bad_image):
                return None
            if key in self.world.no_face:
                return self.reply(200, [])
            return self.reply(200, [{"faceId": self.world.face_id(key), "faceRectangle": _RECT}])
        if path.endswith("/verify"):
            ids = json.loads(body)
            real, fake = (self.world.face_ids.get(ids.get(k, "")) for k in ("faceId1", "faceId2"))
            if real is None or fake is None:
                return self.reply(400, {"error": {"code": "BadArgument", "message": "Face ID is invalid."}})
            if self.play(self.world.hit("verify", fake), _AZ_THROTTLE, _AZ_500):
                return None
            confidence = self.world.similarity(real, fake)
            return self.reply(200, {"isIdentical": confidence >= 0.5, "confidence": confidence})
        return self.reply(404, {"error": {"code": "404", "message": "Resource not found"}})


# --------------------------------------------------------------------------------------------- AWS
class AwsFrontHandler(_Handler):
    """RecognizeCelebrities answered here; CompareFaces passed on to moto (``moto_url``)."""

    moto_url: str = ""

    def do_POST(self):
        body = self.body()
        target = self.headers.get("X-Amz-Target", "")
        self.world.headers_seen.append(dict(self.headers))
        request = json.loads(body or b"{}")
        throttle = {"__type": "ThrottlingException", "message": "Rate exceeded"}
        internal = {"__type": "InternalServerError", "message": "Internal server error"}
        key_id = self.world.aws_access_key
        if key_id and f"Credential={key_id}/" not in self.headers.get("Authorization", ""):
            message = f"The security token included in the request is invalid.{self.echo()}"
            return self.reply(400, {"__type": "UnrecognizedClientException", "message": message})
        if target.endswith(".RecognizeCelebrities"):
            key = sha(base64.b64decode(request["Image"]["Bytes"]))
            if self.play(self.world.hit("recognize", key), throttle, internal):
                return None
            face = {
                "BoundingBox": {"Width": 0.5, "Height": 0.6, "Left": 0.25, "Top": 0.2},
                "Confidence": 99.9,
            }
            if key in self.world.no_face:
                return self.reply(200, {"CelebrityFaces": [], "UnrecognizedFaces": []})
            name, conf = self.world.celebrities.get(key, ("", 0.0))
            if not name:
                return self.reply(200, {"CelebrityFaces": [], "UnrecognizedFaces": [face]})
            celebrity = {"Urls": [], "Name": name, "Id": key[:8], "Face": face, "MatchConfidence": 100 * conf}
            return self.reply(200, {"CelebrityFaces": [celebrity], "UnrecognizedFaces": []})
        if target.endswith(".CompareFaces"):
            real = sha(base64.b64decode(request["SourceImage"]["Bytes"]))
            fake = sha(base64.b64decode(request["TargetImage"]["Bytes"]))
            if self.play(self.world.hit("compare", fake), throttle, internal):
                return None
            if real in self.world.no_face or fake in self.world.no_face:
                return self.reply(
                    400, {"__type": "InvalidParameterException", "Message": "Request has invalid parameters"}
                )
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = requests.post(self.moto_url + self.path, data=body, headers=headers, timeout=10)
            return self.reply(answer.status_code, answer.content)
        return self.reply(400, {"__type": "UnknownOperationException", "message": target})


@contextmanager
def serve(handler: type[_Handler], world: FakeWorld, **attrs):
    """A threaded HTTP server on 127.0.0.1 (a free port); yields its base URL."""
    cls = type(handler.__name__, (handler,), {"world": world, **attrs})
    server = ThreadingHTTPServer(("127.0.0.1", 0), cls)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_aws(world: FakeWorld):
    """moto's ThreadedMotoServer behind the AWS front; yields the front's URL."""
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        with serve(AwsFrontHandler, world, moto_url=f"http://{host}:{port}") as url:
            yield url
    finally:
        moto.stop()
