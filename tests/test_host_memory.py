"""retain_freed_host_memory: a freed large tensor's pages are reused, not faulted in again."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dfdetect.run import common
from dfdetect.utils.host_memory import _glibc
from tests.conftest import compose_config

PAGE_FAULTS_OF_REALLOCATION = """
import json, resource, sys, torch
from dfdetect.utils.host_memory import retain_freed_host_memory
if sys.argv[1] == "retain":
    assert retain_freed_host_memory()
# glibc's tcache holds on to the slivers that aligned allocations split off, so the heap settles
# on one reusable block after about 8 rounds
for _ in range(12):
    torch.empty(64 << 18).fill_(1.0)  # 64 MiB, over glibc's largest mmap threshold
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    torch.empty(64 << 18).fill_(1.0)
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""


def page_faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PAGE_FAULTS_OF_REALLOCATION, mode],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.integration
@pytest.mark.skipif(_glibc() is None, reason="glibc only")
def test_large_tensors_reuse_their_pages_after_retaining():
    pages = 3 * (64 << 20) // 4096
    assert page_faults("system") > pages // 2  # each 64 MiB block mmapped and faulted in anew
    assert page_faults("retain") < pages // 20


@pytest.mark.parametrize("config_name", ["train.yaml", "eval.yaml"])
@pytest.mark.parametrize("retain", [None, False])
def test_entry_points_retain_host_memory_unless_switched_off(config_name, retain, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(common, "retain_freed_host_memory", lambda: calls.append(True) or True)
    overrides = [] if retain is None else [f"extras.retain_freed_host_memory={retain}"]
    common.apply_process_settings(compose_config(config_name, overrides, tmp_path))
    assert calls == ([] if retain is False else [True])
