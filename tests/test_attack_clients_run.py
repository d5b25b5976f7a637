"""scripts/attack.py as a user runs it (subprocesses): killed with SIGKILL mid-run and rerun,
a literal --dry-run, and no trace of a planted key in anything the run writes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import zlib
from contextlib import closing

import pytest

from dfdetect.measure.cache import ApiCache
from tests.attack_fakes import AzureHandler, FakeWorld, NaverHandler, serve
from tests.conftest import ROOT
from tests.test_attack_clients import FAST, NAVER_KEYS, write_pairs

pytestmark = pytest.mark.integration


def attack_cmd(tmp_path, run: str, *overrides: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "scripts" / "attack.py"),
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'runs' / run}",
        f"attack.cache={tmp_path / 'api.sqlite'}",
        "attack.crop=false",
        "attack.dataset=toy",
        *FAST,
        *overrides,
    ]


def naver_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_", "NAVER_"))}
    env.update(
        NAVER_CLIENT_ID=NAVER_KEYS["X-NCP-APIGW-API-KEY-ID"],
        NAVER_CLIENT_SECRET=NAVER_KEYS["X-NCP-APIGW-API-KEY"],
    )
    env.update(extra)
    return env


def test_sigkill_mid_run_then_rerun_requests_each_image_once(tmp_path):
    pairs_csv, shas = write_pairs(tmp_path / "imgs", 6)
    images = [s for pair in shas for s in pair]
    world = FakeWorld(keys=NAVER_KEYS)
    world.delay_s = 0.02
    proc_holder = {}
    killed_on = []

    def kill_on_fifth(op, key, total):
        if total == 5 and not killed_on:
            killed_on.append(key)
            os.kill(proc_holder["proc"].pid, signal.SIGKILL)  # while this request is in flight

    world.on_request = kill_on_fifth
    with serve(NaverHandler, world) as url:
        common = [
            "attack.provider=naver",
            f"attack.pairs_csv={pairs_csv}",
            f"providers.naver.client.url={url}/vision/v1/celebrity",
            "providers.naver.concurrency=1",
            "providers.naver.rate_limit=0",
        ]
        proc = subprocess.Popen(
            attack_cmd(tmp_path, "first", *common),
            env=naver_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        proc_holder["proc"] = proc
        proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL and killed_on
        with ApiCache(tmp_path / "api.sqlite") as cache:
            assert len(cache.calls("naver")) == 4  # answered before the kill, each cached at once

        rerun = subprocess.run(
            attack_cmd(tmp_path, "second", *common),
            env=naver_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert "1 calls were in flight when an earlier run died" in rerun.stdout
        assert {key for _, key in world.counts} == set(images)
        assert all(n == 1 for n in world.counts.values()), world.counts  # no image requested twice
        with ApiCache(tmp_path / "api.sqlite") as cache:
            cached = set(cache.calls("naver")["image_sha256"])
        assert cached == set(images) - set(killed_on)  # every answer received is cached
        with closing(sqlite3.connect(tmp_path / "api.sqlite")) as conn:
            pending = [r[0] for r in conn.execute("SELECT image_sha256 FROM in_flight")]
        assert pending == killed_on

        resend = subprocess.run(
            attack_cmd(tmp_path, "third", *common, "attack.resend_in_flight=true"),
            env=naver_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert resend.returncode == 0, resend.stdout + resend.stderr
        assert world.counts[("recognize", killed_on[0])] == 2 and sum(world.counts.values()) == 13
        with ApiCache(tmp_path / "api.sqlite") as cache:
            assert set(cache.calls("naver")["image_sha256"]) == set(images)


def test_literal_dry_run_flag_sends_nothing(tmp_path):
    pairs_csv, _ = write_pairs(tmp_path / "imgs", 2)
    world = FakeWorld(keys=NAVER_KEYS)
    with serve(NaverHandler, world) as url:
        done = subprocess.run(
            attack_cmd(
                tmp_path,
                "dry",
                "attack.provider=naver",
                f"attack.pairs_csv={pairs_csv}",
                f"providers.naver.client.url={url}",
                "--dry-run",
            ),
            env=naver_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert (
        "estimated cost: 4 billable requests = 0.0040 USD" in done.stdout
        and "dry run: nothing sent" in done.stdout
    )
    assert sum(world.counts.values()) == 0


def test_a_planted_key_appears_in_no_output(tmp_path):
    planted = "PLANTED-KEY-5f2a9c1e7d"
    pairs_csv, shas = write_pairs(tmp_path / "imgs", 2)
    world = FakeWorld(keys={"Ocp-Apim-Subscription-Key": planted})
    world.faults[("recognize", shas[0][0])] = ["429", "500"]
    world.faults[("detect", shas[1][0])] = ["malformed"]
    env = naver_env(AZURE_VISION_KEY=planted, AZURE_FACE_KEY=planted)
    with serve(AzureHandler, world) as url:
        done = subprocess.run(
            attack_cmd(
                tmp_path,
                "azure",
                "attack.provider=azure",
                f"attack.pairs_csv={pairs_csv}",
                f"providers.azure.client.vision_url={url}/vision/v3.2/models/celebrities/analyze",
                f"providers.azure.client.face_url={url}/face/v1.0",
                "providers.azure.rate_limit=0",
            ),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert any(h.get("Ocp-Apim-Subscription-Key") == planted for h in world.headers_seen)  # it was used
    assert planted not in done.stdout + done.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "imgs" not in p.parts]
    assert any(p.parent.name == ".hydra" for p in written) and any(p.suffix == ".log" for p in written)
    for path in written:
        assert planted.encode() not in path.read_bytes(), path
    with closing(sqlite3.connect(tmp_path / "api.sqlite")) as conn:
        blobs = [
            zlib.decompress(b).decode() for (b,) in conn.execute("SELECT raw_json_z FROM api_calls") if b
        ]
        rows = [str(r) for r in conn.execute("SELECT * FROM api_calls")]
    assert len(blobs) == 6 and not any(planted in text for text in blobs + rows)
