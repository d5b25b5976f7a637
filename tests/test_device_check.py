"""scripts/device_check.sh runs only where a GPU is lent, with a few minutes to spend: its dry run
(the CPU-safe checks, every step listed) must pass here first."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, repo_env

pytestmark = pytest.mark.integration


def test_the_dry_run_checks_the_entry_points_and_lists_every_step_benchmarks_first(tmp_path):
    out = tmp_path / "check"
    result = subprocess.run(
        ["bash", "scripts/device_check.sh", "--dry-run", "--out", str(out)],
        cwd=ROOT,
        env={**repo_env(), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = (out / "summary.txt").read_text().splitlines()
    assert lines[0].startswith("# dfdetect device check") and lines[1].startswith("card: ")
    assert "mode: dry-run" in lines
    assert {"check bench-help: ok", "check gpu-config: ok"} <= set(lines)
    steps = [line.split(":")[0] for line in lines if ": not run (dry run): " in line]
    models = sorted(p.stem for p in (ROOT / "dfdetect" / "conf" / "model").glob("*.yaml") if p.stem[0] != "_")
    assert steps[:3] == ["bench-predict", "bench-serve", "bench-cloak"]
    assert steps[3].startswith("train-ddp-")
    assert sorted(steps[4:]) == [f"train-gpu-bf16-{m}" for m in models]
    assert lines[-1] == "failed steps: 0"


def test_an_unknown_argument_exits_2_and_says_so():
    result = subprocess.run(
        ["bash", "scripts/device_check.sh", "--gpu"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and "unknown argument --gpu" in result.stderr
