"""dfdetect's CPU kernels against the torch ops they replace, their build, and the fallback."""

import json
import logging
import os
import subprocess
import sys

import pytest
import torch

from dfdetect.models.layers.convlstm import cpu_kernels
from dfdetect.models.layers.convlstm.layer import ConvLSTM2d, _activate_gates, _gate_grads

# (batch, hidden channels, height, width): vector-width multiples, odd tails, one pixel
SHAPES = [(2, 3, 5, 7), (3, 8, 4, 4), (1, 1, 1, 1), (2, 5, 1, 3)]


def kernels():
    module = cpu_kernels.kernels()
    if module is None and os.environ.get(cpu_kernels.ENV_SWITCH) != "0":
        pytest.fail(
            "dfdetect's CPU kernels did not build on this machine (see the warning logged; "
            f"{cpu_kernels.ENV_SWITCH}=0 tests the torch-op fallback alone)"
        )
    if module is None:
        pytest.skip("CPU kernels switched off")
    return module


def random_gates(batch, n, height, width, dtype, generator):
    # scaled pre-activations spread over the clip's flat parts and the tanh range
    return torch.randn(batch, 4 * n, height, width, dtype=dtype, generator=generator) * 1.5


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-14), (torch.float32, 1e-6)])
@pytest.mark.parametrize("first_step", [True, False])
def test_forward_equals_the_torch_ops(shape, dtype, tolerance, first_step):
    generator = torch.Generator().manual_seed(0)
    batch, n, height, width = shape
    gates = random_gates(batch, n, height, width, dtype, generator)
    cell_prev = None if first_step else torch.randn(batch, n, height, width, dtype=dtype, generator=generator)
    outputs = {}
    for name in ("fused", "torch"):
        act = gates.clone()
        cell, hidden = torch.full((2, batch, n, height, width), float("nan"), dtype=dtype)
        if name == "fused":
            kernels().gates_forward(act, cell_prev, cell, hidden)
        else:
            _activate_gates(act, cell_prev, cell, hidden)
        outputs[name] = (act, cell, hidden)
    for fused, reference in zip(outputs["fused"], outputs["torch"], strict=True):
        torch.testing.assert_close(fused, reference, rtol=0, atol=tolerance)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-13), (torch.float32, 1e-5)])
@pytest.mark.parametrize(
    "first_step, last_step", [(True, True), (True, False), (False, True), (False, False)]
)
def test_backward_equals_the_torch_ops(shape, dtype, tolerance, first_step, last_step):
    generator = torch.Generator().manual_seed(1)
    batch, n, height, width = shape
    act = random_gates(batch, n, height, width, dtype, generator)
    cell = torch.randn(batch, n, height, width, dtype=dtype, generator=generator)
    cell_prev = None if first_step else torch.randn_like(cell)
    _activate_gates(act, cell_prev, cell, torch.empty_like(cell))
    # the incoming hidden gradient as one time step of a batch-major (B, T, n, H, W) gradient
    grad_h = torch.randn(batch, 3, n, height, width, dtype=dtype, generator=generator)[:, 1]
    grad_cell_next = (
        None if last_step else torch.randn(batch, n, height, width, dtype=dtype, generator=generator)
    )

    grad_reference = torch.full_like(act, float("nan"))
    cell_out_reference = _gate_grads(act, cell, cell_prev, grad_h, grad_cell_next, grad_reference)
    grad_fused = torch.full_like(act, float("nan"))
    grad_cell = torch.full_like(cell, float("nan")) if last_step else grad_cell_next.clone()
    kernels().gates_backward(act, cell, cell_prev, grad_h, not last_step, grad_fused, grad_cell)
    torch.testing.assert_close(grad_fused, grad_reference, rtol=0, atol=tolerance)
    torch.testing.assert_close(grad_cell, cell_out_reference, rtol=0, atol=tolerance)


def test_clipped_gates_pass_no_gradient_and_nan_propagates_like_the_torch_ops():
    # n = 2: i, f, g, o of two channels; the second channel's input gate is NaN
    act = torch.tensor([1.0, float("nan"), 0.0, 0.3, 0.5, -1.0, 2.0, 1.0]).view(1, 8, 1, 1)
    results = []
    for forward in (kernels().gates_forward, _activate_gates):
        activated, cell, hidden = act.clone(), torch.empty(1, 2, 1, 1), torch.empty(1, 2, 1, 1)
        forward(activated, None, cell, hidden)
        results.append((activated, hidden))
    torch.testing.assert_close(results[0][0], results[1][0], equal_nan=True)
    torch.testing.assert_close(results[0][1], results[1][1], equal_nan=True)
    assert torch.isnan(results[0][1][0, 1]) and not torch.isnan(results[0][1][0, 0])
    # i at 0, f and o at 1: clipped, so no gradient, though g, the previous cell and tanh(c) are not 0
    act = torch.tensor([0.0, 1.0, 0.5, 1.0]).view(1, 4, 1, 1)
    ones = torch.ones(1, 1, 1, 1)
    grad, grad_cell = torch.empty_like(act), torch.empty_like(ones)
    kernels().gates_backward(act, ones, ones, ones, False, grad, grad_cell)
    reference = torch.empty_like(act)
    _gate_grads(act, ones, ones, ones, None, reference)
    torch.testing.assert_close(grad, reference, rtol=0, atol=0)
    assert grad.abs().sum() == 0 and grad_cell.item() != 0


def test_loading_the_kernels_leaves_denormal_floats_alone():
    kernels()
    tiny = torch.tensor(1e-40)  # a float32 denormal: flushed to zero under -ffast-math's FTZ/DAZ
    assert (tiny * 1.0).item() != 0.0


def test_a_failed_build_falls_back_to_the_torch_ops(monkeypatch, caplog):
    monkeypatch.delenv(cpu_kernels.ENV_SWITCH, raising=False)
    monkeypatch.setattr(cpu_kernels, "_module", None)
    monkeypatch.setattr(cpu_kernels, "_failed", False)

    def no_compiler():
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(cpu_kernels, "_build", no_compiler)
    with caplog.at_level(logging.WARNING, logger=cpu_kernels.log.name):
        assert cpu_kernels.kernels() is None
        assert cpu_kernels.for_tensor(torch.zeros(1)) is None
    assert "no C++ compiler" in caplog.text
    torch.manual_seed(0)
    layer = ConvLSTM2d(2, 3, 3)
    clips = torch.rand(2, 3, 2, 6, 6, requires_grad=True)
    layer(clips).sum().backward()
    assert torch.isfinite(clips.grad).all() and layer.weight_hh.grad.abs().sum() > 0


@pytest.mark.integration
def test_the_environment_switch_turns_the_kernels_off():
    code = "from dfdetect.models.layers.convlstm import cpu_kernels; print(cpu_kernels.kernels())"
    env = {**os.environ, cpu_kernels.ENV_SWITCH: "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


@pytest.mark.integration
@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads the process's memory map (Linux)")
def test_the_kernels_share_torchs_openmp_runtime():
    """A second OpenMP runtime would bring its own spinning threads, which slowed torch's own ops
    2-4x when NNPACK's thread pool ran beside them (docs/benchmarks.md, "ConvLSTM"). Checked in a
    fresh process holding only torch and the kernels (other packages bring their own)."""
    kernels()
    code = (
        "import json, torch\n"
        "from dfdetect.models.layers.convlstm import cpu_kernels\n"
        "assert cpu_kernels.kernels() is not None\n"
        "maps = open('/proc/self/maps').read().splitlines()\n"
        "print(json.dumps(sorted({l.split()[-1] for l in maps if 'libgomp' in l or 'libiomp' in l})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    runtimes = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(runtimes) == 1 and "torch" in runtimes[0], runtimes
