"""Attack runs that fail (issue 20, item 1): refused credentials stop the run with a clear line and
a non-zero exit, are never cached or billed, and a rerun with the right key sends every call; no
secret reaches the cache, the output or the summary even when the provider echoes it; a run in
which no call got an answer fails; ``--dry-run`` checks that the credentials are set, offline."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import zlib
from contextlib import closing

import pytest

from dfdetect.measure.cache import ApiCache
from dfdetect.measure.records import ApiResult
from dfdetect.measure.redact import Redactor, env_secrets
from dfdetect.run.attack import EXIT_FAILED, EXIT_INPUT, EXIT_OK, run_attack
from tests.attack_fakes import AzureHandler, FakeWorld, NaverHandler, serve, serve_aws
from tests.test_attack_clients import AZURE_KEY, NAVER_KEYS, attack_cfg, creds, write_pairs  # noqa: F401
from tests.test_attack_clients_run import attack_cmd, naver_env

WRONG = "wrong-key-0c4f7a19be"


def azure_overrides(url: str) -> list[str]:
    return [
        "attack.provider=azure",
        f"providers.azure.client.vision_url={url}/vision/v3.2/models/celebrities/analyze",
        f"providers.azure.client.face_url={url}/face/v1.0",
        "providers.azure.rate_limit=0",
        "providers.azure.concurrency=1",
    ]


def run_script(tmp_path, run: str, env: dict, *overrides: str) -> tuple[int, str, str]:
    """scripts/attack.py as a user runs it: (exit status, stdout, stdout + stderr)."""
    done = subprocess.run(
        attack_cmd(tmp_path, run, *overrides), env=env, capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout, done.stdout + done.stderr


def cache_rows(path) -> tuple[list[str], list[str]]:
    """(every api_calls row as text, every decompressed raw JSON)."""
    with closing(sqlite3.connect(path)) as conn:
        rows = [str(r) for r in conn.execute("SELECT * FROM api_calls")]
        blobs = [
            zlib.decompress(b).decode() for (b,) in conn.execute("SELECT raw_json_z FROM api_calls") if b
        ]
        pending = conn.execute("SELECT COUNT(*) FROM in_flight").fetchone()[0]
    assert pending == 0  # a refused call is not left "in flight" (which a rerun would skip)
    return rows, blobs


@pytest.mark.integration
def test_wrong_azure_key_fails_caches_nothing_and_a_rerun_with_the_right_key_sends_all(tmp_path):
    """As seen: 2 pairs on Azure with a wrong key exited 0 with `6 calls answered {'error': 6}`,
    counted 0.01 USD and cached the 401s (echoing the key), so the rerun sent nothing."""
    pairs_csv, shas = write_pairs(tmp_path / "imgs", 2)
    world = FakeWorld(keys={"Ocp-Apim-Subscription-Key": AZURE_KEY})
    world.echo_key = True  # "Access denied due to invalid subscription key <key>."
    with serve(AzureHandler, world) as url:
        common = [*azure_overrides(url), f"attack.pairs_csv={pairs_csv}"]
        code, _, out = run_script(
            tmp_path, "wrong", naver_env(AZURE_VISION_KEY=WRONG, AZURE_FACE_KEY=WRONG), *common
        )
        assert code == EXIT_FAILED, out
        assert "azure: authentication failed (no call answered): HTTP401" in out
        assert "invalid subscription key ***" in out and "check AZURE_VISION_KEY" in out
        assert "not cached, not billed" in out and "0.0000 USD" in out
        summary = json.loads((tmp_path / "runs" / "wrong" / "attack_summary.json").read_text())
        assert summary["spent_usd"] == 0 and summary["requests"] == 0 and summary["refused"] >= 1
        assert "AZURE_VISION_KEY" in summary["failed"]
        rows, blobs = cache_rows(tmp_path / "api.sqlite")
        assert rows == [] and blobs == []  # no 401 cached as an answer
        written = [p for p in tmp_path.rglob("*") if p.is_file() and "imgs" not in p.parts]
        for path in written:
            assert WRONG.encode() not in path.read_bytes(), path
        assert WRONG not in out

        code, stdout, out = run_script(
            tmp_path, "fixed", naver_env(AZURE_VISION_KEY=AZURE_KEY, AZURE_FACE_KEY=AZURE_KEY), *common
        )
    assert code == EXIT_OK, out
    assert "azure: 6 calls answered {'ok': 6}" in stdout
    with ApiCache(tmp_path / "api.sqlite") as cache:
        calls = cache.calls("azure")
    assert len(calls) == 6 and calls["status"].eq("ok").all()


@pytest.mark.parametrize("provider", ["naver", "aws"])
@pytest.mark.usefixtures("creds")
def test_refused_credentials_are_not_cached_or_billed(provider, tmp_path, monkeypatch, capsys):
    pairs_csv, _ = write_pairs(tmp_path / "imgs", 2)
    world = FakeWorld(keys=NAVER_KEYS if provider == "naver" else None)
    world.echo_key = True
    if provider == "naver":
        server, wrong, hint = (
            serve(NaverHandler, world),
            ("NAVER_CLIENT_SECRET", WRONG),
            "NAVER_CLIENT_SECRET",
        )
    else:
        world.aws_access_key = "AKIATESTING"
        server, wrong, hint = serve_aws(world), ("AWS_ACCESS_KEY_ID", "AKIAWRONGKEY1"), "AWS_ACCESS_KEY_ID"
    with server as url:
        cfg = lambda: attack_cfg(tmp_path, provider, url, pairs_csv)  # noqa: E731
        monkeypatch.setenv(*wrong)
        code, summary = run_attack(cfg())
        out = capsys.readouterr().out
        assert code == EXIT_FAILED, out
        assert f"{provider}: authentication failed (no call answered)" in out and hint in out
        assert summary["refused"] >= 1 and summary["spent_usd"] == 0 and summary["requests"] == 0
        assert wrong[1] not in out + json.dumps(summary)
        assert cache_rows(tmp_path / "api.sqlite") == ([], [])
        right = {"naver": NAVER_KEYS["X-NCP-APIGW-API-KEY"], "aws": "AKIATESTING"}[provider]
        monkeypatch.setenv(wrong[0], right)
        code, summary = run_attack(cfg())
    assert code == EXIT_OK and summary["refused"] == 0
    n_calls = {"naver": 4, "aws": 6}[provider]
    assert summary["sent"] == n_calls and set(summary["statuses"]) <= {"ok", "no_face"}


@pytest.mark.usefixtures("creds")
def test_an_echoed_key_never_reaches_the_cache(tmp_path, monkeypatch):
    """A cached client error whose body repeats the key, and an error code made of it."""
    pairs_csv, shas = write_pairs(tmp_path / "imgs", 2)
    planted = "PLANTED-azure-key-93d1c0"
    monkeypatch.setenv("AZURE_VISION_KEY", planted)
    monkeypatch.setenv("AZURE_FACE_KEY", planted)
    world = FakeWorld(keys={"Ocp-Apim-Subscription-Key": planted})
    world.echo_key = True
    world.faults[("recognize", shas[0][0])] = ["400"]
    world.faults[("detect", shas[1][0])] = ["400"]
    with serve(AzureHandler, world) as url:
        code, summary = run_attack(attack_cfg(tmp_path, "azure", url, pairs_csv))
    assert code == EXIT_OK and summary["statuses"] == {"ok": 4, "error": 2}
    rows, blobs = cache_rows(tmp_path / "api.sqlite")
    assert sum("Input data is not a valid image ***" in b for b in blobs) == 2  # stored, masked
    assert not any(planted in text for text in rows + blobs)


def test_secrets_come_from_the_credential_variables_and_secret_looking_names():
    environ = {
        "AZURE_VISION_KEY": "abcd",  # a credential variable of the config: masked at any length >= 4
        "MY_SERVICE_TOKEN": "tok-5566778899",
        "DB_PASSWORD": "hunter2hunter2",
        "USE_KEYRING": "1",  # too short to be a secret
        "GIT_AUTHOR_NAME": "Emma Watson",  # not a secret name
        "HOME": "/home/someone",
    }
    secrets = env_secrets(["AZURE_VISION_KEY"], environ)
    assert set(secrets) == {"abcd", "tok-5566778899", "hunter2hunter2"}
    redact = Redactor(secrets)
    raw = {"error": {"message": "bad key abcd", "tok-5566778899": ["x hunter2hunter2 y", 3]}, "n": 1.5}
    assert redact(raw) == {"error": {"message": "bad key ***", "***": ["x *** y", 3]}, "n": 1.5}
    assert redact("Emma Watson") == "Emma Watson"


@pytest.mark.usefixtures("creds")
def test_a_run_in_which_no_call_is_answered_fails(tmp_path, capsys):
    pairs_csv, shas = write_pairs(tmp_path / "imgs", 2)
    world = FakeWorld(keys=NAVER_KEYS)
    for pair in shas:
        for image in pair:
            world.faults[("recognize", image)] = ["500"] * 2
    with serve(NaverHandler, world) as url:
        code, summary = run_attack(
            attack_cfg(tmp_path, "naver", url, pairs_csv, "attack.retry.max_attempts=2")
        )
        out = capsys.readouterr().out
        assert code == EXIT_FAILED
        assert "all 4 calls failed: 4 × transient:HTTP500 (naver)" in out and "sent again by a rerun" in out
        code, summary = run_attack(attack_cfg(tmp_path, "naver", url, pairs_csv))  # the faults are used up
    assert code == EXIT_OK and summary["statuses"] == {"ok": 4}


@pytest.mark.usefixtures("creds")
def test_an_old_cache_holding_refused_calls_sends_them_again(tmp_path):
    pairs_csv, shas = write_pairs(tmp_path / "imgs", 1)
    with ApiCache(tmp_path / "api.sqlite") as cache:  # what an older version cached
        for image in shas[0]:
            cache.record_call(
                ApiResult("azure", "recognize", "error", error_code="401"), image, params={"crop": "none"}
            )
    world = FakeWorld(keys={"Ocp-Apim-Subscription-Key": AZURE_KEY})
    with serve(AzureHandler, world) as url:
        code, summary = run_attack(attack_cfg(tmp_path, "azure", url, pairs_csv))
    assert code == EXIT_OK and summary["sent"] == 3 and summary["statuses"] == {"ok": 3}


# ------------------------------------------------------------------------------------------ dry run
@pytest.fixture
def no_network(monkeypatch):
    """Records (and refuses) every outgoing connection of this process."""
    attempts = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError(f"network disabled in this test: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.mark.parametrize(
    ("provider", "unset", "named"),
    [
        ("azure", ["AZURE_FACE_KEY"], "AZURE_FACE_KEY (for compare)"),
        ("naver", ["NAVER_CLIENT_ID", "NAVER_CLIENT_SECRET"], "NAVER_CLIENT_SECRET (for recognize)"),
    ],
)
@pytest.mark.usefixtures("creds")
def test_dry_run_names_missing_keys(provider, unset, named, tmp_path, monkeypatch, capsys, no_network):
    pairs_csv, _ = write_pairs(tmp_path / "imgs", 2)
    for name in unset:
        monkeypatch.delenv(name)
    code, summary = run_attack(
        attack_cfg(tmp_path, provider, "http://127.0.0.1:9", pairs_csv, "attack.dry_run=true")
    )
    out = capsys.readouterr().out
    assert code == EXIT_INPUT and f"missing: {named}" in out and named in summary["missing_credentials"]
    assert len(summary["missing_credentials"]) == len(unset) and not no_network
    for name in unset:
        monkeypatch.setenv(name, "set-now-123")
    code, summary = run_attack(
        attack_cfg(tmp_path, provider, "http://127.0.0.1:9", pairs_csv, "attack.dry_run=true")
    )
    assert code == EXIT_OK and "credentials: set" in capsys.readouterr().out


@pytest.mark.usefixtures("creds")
def test_dry_run_resolves_the_aws_chain_offline(tmp_path, monkeypatch, capsys, no_network):
    pairs_csv, _ = write_pairs(tmp_path / "imgs", 1)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    dry = ("attack.dry_run=true",)
    code, summary = run_attack(attack_cfg(tmp_path, "aws", "http://127.0.0.1:9", pairs_csv, *dry))
    out = capsys.readouterr().out
    assert code == EXIT_INPUT and "boto3's chain finds none" in out and "AWS_ACCESS_KEY_ID" in out
    assert not no_network  # no instance-metadata request
    (tmp_path / "no-credentials").write_text(
        "[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = s3cr3t-file\n"
    )
    code, _ = run_attack(attack_cfg(tmp_path, "aws", "http://127.0.0.1:9", pairs_csv, *dry))
    assert code == EXIT_OK and "credentials: set" in capsys.readouterr().out
    missing_profile = ("providers.aws.client.profile=nobody",)
    code, summary = run_attack(
        attack_cfg(tmp_path, "aws", "http://127.0.0.1:9", pairs_csv, *dry, *missing_profile)
    )
    assert code == EXIT_INPUT and "nobody" in summary["missing_credentials"][0]
    (tmp_path / "no-credentials").unlink()  # e.g. an instance role, which only a request could check
    skip = ("attack.check_credentials=false",)
    code, _ = run_attack(attack_cfg(tmp_path, "aws", "http://127.0.0.1:9", pairs_csv, *dry, *skip))
    assert code == EXIT_OK and not no_network


@pytest.mark.integration
def test_literal_dry_run_exits_non_zero_naming_a_missing_key(tmp_path):
    pairs_csv, _ = write_pairs(tmp_path / "imgs", 1)
    env = naver_env(AZURE_FACE_KEY=AZURE_KEY)  # AZURE_VISION_KEY not set
    overrides = [*azure_overrides("http://127.0.0.1:9"), f"attack.pairs_csv={pairs_csv}", "--dry-run"]
    code, stdout, out = run_script(tmp_path, "dry", env, *overrides)
    assert code == EXIT_INPUT, out
    assert "missing: AZURE_VISION_KEY (for recognize)" in stdout and "AZURE_FACE_KEY" not in stdout
