"""The provider registry: the built-in providers' records, and two providers defined here (fake APIs
answering from a dict, one with a face-similarity call and one without) registered at run time and
followed through everything that depends on a provider: the client built by name, its parser, the
runner's plan, request count and cost, the cache keys, records validation, DHS, Table 2 and the
Fig. 4-style chart."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from dfdetect.measure import registry
from dfdetect.measure.cache import ApiCache
from dfdetect.measure.errors import AttackDataError
from dfdetect.measure.providers import aws, azure, naver
from dfdetect.measure.providers.base import ApiClient, Outcome, parse_response
from dfdetect.measure.records import ATTACK_COLUMNS, ApiResult, validate_attack_records
from dfdetect.measure.registry import (
    Provider,
    build_client,
    get_provider,
    no_call_params,
    provider_names,
    register_provider,
)
from dfdetect.run.attack import EXIT_OK, run_attack
from dfdetect.table2.from_cache import attack_records_from_cache
from dfdetect.table2.metrics import after_defense, compute_attack_metrics
from dfdetect.table2.plots import plot_attack_metrics
from dfdetect.table2.table2 import cells, table2_row, write_table2
from tests.attack_fakes import sha
from tests.conftest import CONF_DIR, compose_config
from tests.test_attack_clients import csv_run, write_pairs

WORLD: dict[str, tuple[str, float]] = {}  # image sha256 -> (celebrity, confidence 0–1) it is named as
CALLS: Counter = Counter()  # (provider, operation) -> calls answered


class AcmeClient(ApiClient):
    """A fake API without network: names the images of ``WORLD``, similarity 0.9 for every pair."""

    provider = "acme"

    def __init__(self, mode: str = "strict", gate=None, **_ignored):
        super().__init__(gate)
        self.mode = mode

    def recognize(self, image: bytes) -> Outcome:
        self.gate()
        CALLS[(self.provider, "recognize")] += 1
        name, score = WORLD.get(sha(image), (None, None))
        payload = {"who": [{"name": name, "score": score}] if name else []}
        return Outcome(parse_response(self.provider, "recognize", payload), raw=payload)

    def compare(self, fake: bytes, real: bytes) -> Outcome:
        self.gate()
        CALLS[(self.provider, "compare")] += 1
        payload = {"sim": 0.9}
        return Outcome(parse_response(self.provider, "compare", payload), raw=payload)


class EchoClient(AcmeClient):
    provider = "echo"


def parser(provider: str):
    def parse(operation: str, payload) -> ApiResult:
        if operation == "compare":
            return ApiResult(provider, "compare", "ok", similarity=100.0 * payload["sim"])
        best = max(payload["who"], key=lambda w: w["score"], default=None)
        if best is None:
            return ApiResult(provider, "recognize", "ok")
        return ApiResult(provider, "recognize", "ok", name=best["name"], confidence=100.0 * best["score"])

    return parse


def error_code(payload: dict) -> str | None:
    return payload.get("fault")


ACME = Provider(
    name="acme",
    label="ACME",
    colour="#7b3294",
    client_class=AcmeClient,
    parse=parser("acme"),
    error_code=error_code,
    requests_per_call={"recognize": 1, "compare": 2},
    table2_column="acme",
    compare_params=lambda settings: {"mode": str(settings["mode"])},
)
# acme without a face-similarity API, and not in Table 2
ECHO = dataclasses.replace(
    ACME,
    name="echo",
    label="ECHO",
    colour="#999999",
    client_class=EchoClient,
    parse=parser("echo"),
    requests_per_call={"recognize": 1},
    table2_column=None,
    compare_params=no_call_params,
)


@pytest.fixture
def own_registry(monkeypatch):
    """Providers registered during a test are gone after it."""
    monkeypatch.setattr(registry, "_PROVIDERS", dict(registry._PROVIDERS))
    WORLD.clear()
    CALLS.clear()


@pytest.fixture
def fake_providers(own_registry):
    register_provider(ACME)
    register_provider(ECHO)


def attack_cfg(tmp_path, provider: str, pairs_csv, *overrides):
    """``dfdetect/conf/attack.yaml`` with ``providers.<provider>`` given as overrides (a config file's keys)."""
    return compose_config(
        "attack.yaml",
        [
            *csv_run(tmp_path, provider, pairs_csv),
            f"+providers.{provider}.rate_limit=0",
            f"+providers.{provider}.burst=1",
            f"+providers.{provider}.concurrency=2",
            f"+providers.{provider}.price_tiers=[[null,1.0]]",
            f"+providers.{provider}.client.mode=loose",
            *overrides,
        ],
        tmp_path,
    )


# ---------------------------------------------------------------------------------------- built-in
def test_the_built_in_providers_and_their_configs(tmp_path):
    assert provider_names() == ("aws", "azure", "naver")
    facts = {
        p.name: (p.label, p.table2_column, p.colour, p.has_similarity, dict(p.requests_per_call))
        for p in registry.providers()
    }
    assert facts == {
        "aws": ("AWS", "aws", "#ff9900", True, {"recognize": 1, "compare": 1}),
        "azure": ("MS", "ms", "#0078d4", True, {"recognize": 1, "compare": 3}),
        "naver": ("NAV", "nav", "#03c75a", False, {"recognize": 1}),
    }
    assert [get_provider(p).confidence_scale for p in provider_names()] == [1.0, 100.0, 100.0]
    assert registry.providers() == (aws.PROVIDER, azure.PROVIDER, naver.PROVIDER)
    assert [get_provider(p).client_class.__name__ for p in provider_names()] == [
        "AwsClient",
        "AzureClient",
        "NaverClient",
    ]
    assert get_provider("aws").compare_params({"similarity_threshold": 0}) == {"SimilarityThreshold": 0.0}
    assert get_provider("azure").compare_params({"similarity": "verify"}) == {"method": "verify"}
    assert get_provider("naver").compare_params({}) == {}
    # one config per provider, composed under providers.<name>
    assert sorted(p.stem for p in (CONF_DIR / "attack").glob("*.yaml")) == sorted(provider_names())
    cfg = compose_config("attack.yaml", [], tmp_path)
    assert set(cfg.providers) == set(provider_names())


def test_the_registry_refuses_bad_records(own_registry):
    register_provider(ACME)
    with pytest.raises(ValueError, match="'acme' is registered twice"):
        register_provider(ACME)
    fields = dict(label="X", colour="#000000", client_class=AcmeClient, parse=None, error_code=None)
    with pytest.raises(ValueError, match="must be an identifier"):
        Provider(name="ac me", requests_per_call={"recognize": 1}, **fields)
    with pytest.raises(ValueError, match="requests_per_call needs 'recognize'"):
        Provider(name="x", requests_per_call={"compare": 1}, **fields)
    with pytest.raises(ValueError, match="requests_per_call needs 'recognize'"):
        Provider(name="x", requests_per_call={"recognize": 1, "search": 1}, **fields)
    with pytest.raises(ValueError, match="at least one request"):
        Provider(name="x", requests_per_call={"recognize": 0}, **fields)
    with pytest.raises(ValueError, match="Table 2 column 'ms' is taken"):
        register_provider(
            Provider(name="x", requests_per_call={"recognize": 1}, table2_column="ms", **fields)
        )
    for call in (lambda: get_provider("alibaba"), lambda: build_client("alibaba", {})):
        with pytest.raises(AttackDataError, match="unknown provider 'alibaba'; expected one of aws, azure"):
            call()
    with pytest.raises(TypeError):
        ACME.requests_per_call["compare"] = 1  # a record cannot change after registration


# ---------------------------------------------------------------------------- a provider added here
def test_a_registered_provider_is_known_by_name(fake_providers):
    client = build_client("acme", {"mode": "loose", "unused_setting": 1})
    assert isinstance(client, AcmeClient) and client.mode == "loose"
    named = parse_response(
        "acme", "recognize", {"who": [{"name": "A", "score": 0.5}, {"name": "B", "score": 0.7}]}
    )
    assert (named.provider, named.name, named.confidence) == ("acme", "B", pytest.approx(70.0))
    failed = parse_response("acme", "compare", {"fault": "Busy"}, http_status=503)
    assert (failed.status, failed.error_code) == ("error", "Busy")
    with pytest.raises(AttackDataError, match="acme recognize: unexpected response shape"):
        parse_response("acme", "recognize", {"nobody": []})
    records = pd.DataFrame(
        [["acme", "toy", "k0", "T", "T", 95.0, "T", 99.0, np.nan, "x"]], columns=ATTACK_COLUMNS
    )
    assert validate_attack_records(records)["provider"].tolist() == ["acme"]
    with pytest.raises(AttackDataError, match="unknown provider"):
        validate_attack_records(records.assign(provider="alibaba"))
    assert [c for c in cells() if c.endswith("_acme")] == ["targeted_acme", "nontargeted_acme"]
    assert not any(c.endswith("_echo") for c in cells())


def test_a_registered_provider_is_measured_and_scored(fake_providers, tmp_path, capsys):
    pairs_csv, shas = write_pairs(tmp_path / "imgs", 3)
    for i, (_, real) in enumerate(shas):
        WORLD[real] = (f"Celebrity {i}", 0.99)
    WORLD[shas[0][0]] = ("Celebrity 0", 0.95)  # a targeted success
    WORLD[shas[1][0]] = ("Someone Else", 0.9)  # named, not as its target; fake 2 is not named

    code, summary = run_attack(attack_cfg(tmp_path, "acme", pairs_csv, "attack.dry_run=true"))
    assert code == EXIT_OK and summary["dry_run"] and not CALLS
    # 6 recognitions of one request, 3 comparisons of two: acme's requests_per_call
    assert summary["plan"] == {"compare": {"calls": 3, "to_send": 3}, "recognize": {"calls": 6, "to_send": 6}}
    assert summary["estimated_requests"] == 12 and summary["estimated_cost_usd"] == pytest.approx(0.012)
    code, summary = run_attack(attack_cfg(tmp_path, "acme", pairs_csv))
    assert code == EXIT_OK and summary["similarity"] == "available"
    assert (summary["sent"], summary["requests"]) == (9, 12)
    assert CALLS == {("acme", "recognize"): 6, ("acme", "compare"): 3}

    code, summary = run_attack(attack_cfg(tmp_path, "echo", pairs_csv))
    assert code == EXIT_OK and summary["similarity"] == "unavailable" and "compare" not in summary["plan"]
    assert (summary["sent"], summary["requests"]) == (6, 6)
    assert "similarity: unavailable for echo (no face-similarity API), not 0" in capsys.readouterr().out

    with ApiCache(tmp_path / "api.sqlite") as cache:
        compares = cache.calls("acme", "compare")
        assert compares["params_json"].eq('{"crop":"none","mode":"loose"}').all()  # compare_params
        assert cache.calls("echo", "compare").empty
        acme, _ = attack_records_from_cache(cache, "acme", "toy")
        echo, _ = attack_records_from_cache(cache, "echo", "toy")
    assert acme["similarity"].eq(90.0).all() and echo["similarity"].isna().all()
    records = pd.concat([acme, echo], ignore_index=True)
    metrics = compute_attack_metrics(records).set_index("provider")
    assert metrics.loc["acme", ["TA", "NA", "DHS"]].tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 3])
    assert metrics.loc["echo", ["TA", "NA"]].tolist() == pytest.approx([1 / 3, 2 / 3])
    assert np.isnan(metrics.loc["echo", "DHS"])  # no similarity API: unavailable, not 0

    after, _ = after_defense(records, accuracy=0.9)
    row = table2_row("toy", "DD1", after, mode="formula")
    assert row["targeted_acme_before_pct"] == pytest.approx(100 / 3)
    assert row["targeted_acme_after_pct"] == pytest.approx(100 / 3 * 0.1)
    assert not any("echo" in key for key in row)  # no Table 2 column
    paths = write_table2([row], tmp_path / "table")
    assert "| Targeted ACME |" in paths["md"].read_text(encoding="utf-8")
    tex = paths["tex"].read_text(encoding="utf-8")
    assert "\\multicolumn{4}{c}{Targeted attack}" in tex and "\\cmidrule(lr){4-7} \\cmidrule(lr){8-11}" in tex
    png = plot_attack_metrics(metrics.reset_index(), tmp_path / "fig4.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
