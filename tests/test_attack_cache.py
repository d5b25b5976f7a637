"""The API results cache, provider response parsing, and attack records built from the cache."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing

import numpy as np
import pandas as pd
import pytest

from dfdetect.measure.cache import ApiCache
from dfdetect.measure.providers import parse_response
from dfdetect.measure.records import ApiResult, AttackDataError
from dfdetect.table2.from_cache import attack_records_from_cache
from dfdetect.table2.metrics import compute_attack_metrics


@pytest.fixture
def cache(tmp_path):
    with ApiCache(tmp_path / "api.sqlite") as c:
        yield c


def sha(i) -> str:
    return f"{i:064x}"


# ------------------------------------------------------------------------------------------ cache
def test_round_trip_keeps_every_field(cache):
    raw = {"CelebrityFaces": [{"Name": "Emma Watson", "MatchConfidence": 99.5}], "UnrecognizedFaces": []}
    result = parse_response("aws", "recognize", raw)
    assert cache.record_call(result, sha(1), params={"max_faces": 1}, raw=raw, latency_s=0.42)
    row = cache.get_call("aws", "recognize", sha(1), params={"max_faces": 1})
    assert row["status"] == "ok"
    assert row["name_raw"] == "Emma Watson" and row["name_norm"] == "emmawatson"
    assert row["confidence"] == pytest.approx(99.5)
    assert row["similarity"] is None and row["error_code"] is None
    assert row["latency_s"] == pytest.approx(0.42) and row["attempts"] == 1
    assert row["raw"] == raw
    assert row["params_json"] == '{"max_faces":1}'
    assert row["created_at"].endswith("+00:00")
    assert cache.get_call("aws", "recognize", sha(1)) is None  # other params: another call


def test_no_answer_is_null_and_zero_stays_zero(cache):
    cache.record_call(ApiResult("azure", "recognize", "ok"), sha(1))
    cache.record_call(ApiResult("azure", "recognize", "ok", name="X", confidence=0.0), sha(2))
    cache.record_call(ApiResult("aws", "compare", "ok", similarity=0.0), sha(3), ref_sha256=sha(4))
    cache.record_call(ApiResult("aws", "compare", "no_face"), sha(5), ref_sha256=sha(4))
    assert cache.get_call("azure", "recognize", sha(1))["confidence"] is None
    assert cache.get_call("azure", "recognize", sha(2))["confidence"] == 0.0
    assert cache.get_call("aws", "compare", sha(3), sha(4))["similarity"] == 0.0
    assert cache.get_call("aws", "compare", sha(5), sha(4))["similarity"] is None
    with closing(sqlite3.connect(cache.path)) as conn:
        counts = conn.execute(
            "SELECT operation, SUM(confidence IS NULL), SUM(similarity IS NULL) FROM api_calls GROUP BY operation"
        ).fetchall()
    assert sorted(counts) == [("compare", 2, 1), ("recognize", 1, 2)]


def test_key_is_unique_and_only_errors_are_replaced(cache):
    ok = ApiResult("aws", "recognize", "ok", name="A", confidence=90.0)
    assert cache.record_call(ok, sha(1))
    assert not cache.record_call(ApiResult("aws", "recognize", "ok", name="B", confidence=50.0), sha(1))
    assert cache.get_call("aws", "recognize", sha(1))["name_raw"] == "A"
    assert cache.record_call(
        ApiResult("aws", "recognize", "ok", name="B", confidence=50.0), sha(1), overwrite=True
    )
    assert cache.get_call("aws", "recognize", sha(1))["name_raw"] == "B"

    assert cache.record_call(ApiResult("aws", "recognize", "error", error_code="ThrottlingException"), sha(2))
    assert not cache.is_done("aws", "recognize", sha(2))
    assert cache.record_call(ok, sha(2), attempts=1)
    row = cache.get_call("aws", "recognize", sha(2))
    assert (row["status"], row["attempts"], row["error_code"]) == ("ok", 2, None)
    assert cache.is_done("aws", "recognize", sha(2))
    assert len(cache.calls()) == 2
    with pytest.raises(sqlite3.IntegrityError):
        with closing(sqlite3.connect(cache.path)) as conn:
            conn.execute(
                "INSERT INTO api_calls (provider, operation, image_sha256, status, created_at)"
                " VALUES ('aws', 'recognize', ?, 'ok', 'now')",
                (sha(1),),
            )


def test_secrets_and_incomplete_calls_are_refused(cache):
    result = ApiResult("aws", "recognize", "ok")
    for params in ({"api_key": "x"}, {"SubscriptionKey": "x"}, {"aws_secret_access_key": "x"}):
        with pytest.raises(AttackDataError, match="credential"):
            cache.record_call(result, sha(1), params=params)
    with pytest.raises(AttackDataError, match="reference image"):
        cache.record_call(ApiResult("aws", "compare", "ok", similarity=50.0), sha(1))
    with pytest.raises(AttackDataError, match="outside 0–100"):
        ApiResult("azure", "recognize", "ok", name="X", confidence=101.0)
    assert cache.calls().empty


def test_concurrent_writers_from_two_threads(cache):
    errors, written = [], []

    def worker(offset: int) -> None:
        try:
            for i in range(offset, offset + 150):
                result = ApiResult("aws", "recognize", "ok", name=f"n{i}", confidence=float(i % 100))
                written.append(cache.record_call(result, sha(i), raw={"i": i}))
        except Exception as e:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in (0, 100)]  # 50 keys overlap
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(written) == 250 and len(written) == 300
    calls = cache.calls()
    assert len(calls) == 250 and calls["image_sha256"].is_unique
    with closing(sqlite3.connect(cache.path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_failed_image_batch_writes_nothing(cache):
    bad = pd.DataFrame(
        {
            "sha256": [sha(1), sha(2)],
            "image_key": ["a", "b"],
            "dataset": "D",
            "label": [1, 2],
            "identity": "X",
        }
    )
    with pytest.raises(AttackDataError, match="label must be 0 or 1"):
        cache.add_images(bad)
    assert cache.images().empty


# ---------------------------------------------------------------------------------------- parsers
def test_aws_responses():
    celebs = {
        "CelebrityFaces": [{"Name": "A", "MatchConfidence": 60.0}, {"Name": "B", "MatchConfidence": 97.0}],
        "UnrecognizedFaces": [],
    }
    assert parse_response("aws", "recognize", celebs) == ApiResult("aws", "recognize", "ok", "B", 97.0)
    unknown = {"CelebrityFaces": [], "UnrecognizedFaces": [{"Confidence": 99.9}]}
    assert parse_response("aws", "recognize", unknown) == ApiResult("aws", "recognize", "ok")
    no_face = {"CelebrityFaces": [], "UnrecognizedFaces": []}
    assert parse_response("aws", "recognize", no_face).status == "no_face"
    matches = {
        "SourceImageFace": {},
        "FaceMatches": [{"Similarity": 12.5}, {"Similarity": 88.0}],
        "UnmatchedFaces": [],
    }
    assert parse_response("aws", "compare", matches).similarity == 88.0
    below = {"SourceImageFace": {}, "FaceMatches": [], "UnmatchedFaces": [{"Confidence": 99.0}]}
    assert parse_response("aws", "compare", below) == ApiResult("aws", "compare", "ok")
    boto_error = {"Error": {"Code": "InvalidParameterException", "Message": "Request has invalid parameters"}}
    assert parse_response("aws", "compare", boto_error) == ApiResult(
        "aws", "compare", "no_face", error_code="InvalidParameterException"
    )
    http_error = {"__type": "com.amazonaws#ThrottlingException", "message": "slow down"}
    assert parse_response("aws", "recognize", http_error).error_code == "ThrottlingException"
    with pytest.raises(AttackDataError, match="aws recognize"):
        parse_response("aws", "recognize", {"Labels": []})


def test_azure_responses():
    analyze = {
        "result": {"celebrities": [{"name": "Satya Nadella", "confidence": 0.9999, "faceRectangle": {}}]},
        "requestId": "r",
        "metadata": {},
    }
    result = parse_response("azure", "recognize", analyze)
    assert (result.name, result.confidence) == ("Satya Nadella", pytest.approx(99.99))
    assert parse_response("azure", "recognize", {"result": {"celebrities": []}}) == ApiResult(
        "azure", "recognize", "ok"
    )
    assert parse_response(
        "azure", "compare", {"isIdentical": False, "confidence": 0.31}
    ).similarity == pytest.approx(31)
    assert parse_response(
        "azure", "compare", [{"faceId": "f", "confidence": 0.8}]
    ).similarity == pytest.approx(80)
    assert parse_response("azure", "compare", []).similarity is None
    error = {"error": {"code": "InvalidRequest", "message": "m", "innererror": {"code": "InvalidImageSize"}}}
    assert parse_response("azure", "recognize", error) == ApiResult(
        "azure", "recognize", "error", error_code="InvalidImageSize"
    )
    assert parse_response("azure", "recognize", {}, http_status=429).error_code == "HTTP429"


def test_naver_responses_and_unknown_provider():
    response = {
        "info": {"size": {"width": 240, "height": 240}, "faceCount": 1},
        "faces": [{"celebrity": {"value": "수지", "confidence": 0.62}}],
    }
    result = parse_response("naver", "recognize", response)
    assert (result.name, result.confidence) == ("수지", pytest.approx(62.0))
    assert parse_response("naver", "recognize", {"info": {"faceCount": 0}, "faces": []}).status == "no_face"
    assert (
        parse_response("naver", "recognize", {"errorCode": "ER05", "errorMessage": "m"}).error_code == "ER05"
    )
    with pytest.raises(AttackDataError, match="no face-similarity API"):
        parse_response("naver", "compare", {})
    with pytest.raises(AttackDataError, match="unknown provider 'alibaba'"):
        parse_response("alibaba", "recognize", {})


# ------------------------------------------------------------------------------ cache → records
def _fill_demo_cache(cache: ApiCache, provider: str) -> None:
    """Identity A: 2 real images (named A at 90 and 80), fakes a0 (named A at 95, similarity 85 to
    one real, 70 to the other), a1 (no celebrity), a2 (error), a3 (never queried).
    Identity B: 1 real image with no answer, fake b0 named C at 99."""
    images = pd.DataFrame(
        [
            (sha(1), "D/real/A/1", 0, "A"),
            (sha(2), "D/real/A/2", 0, "A"),
            (sha(3), "D/real/B/1", 0, "B"),
            (sha(10), "D/fake/A/0", 1, "A"),
            (sha(11), "D/fake/A/1", 1, "A"),
            (sha(12), "D/fake/A/2", 1, "A"),
            (sha(13), "D/fake/A/3", 1, "A"),
            (sha(20), "D/fake/B/0", 1, "B"),
        ],
        columns=["sha256", "image_key", "label", "identity"],
    ).assign(dataset="D")
    cache.add_images(images)
    ok = lambda name=None, conf=None: ApiResult(provider, "recognize", "ok", name, conf)  # noqa: E731
    cache.record_call(ok("A", 90.0), sha(1))
    cache.record_call(ok("A", 80.0), sha(2))
    cache.record_call(ok(), sha(3))
    cache.record_call(ok("A", 95.0), sha(10))
    cache.record_call(ok(), sha(11))
    cache.record_call(ApiResult(provider, "recognize", "error", error_code="InternalServerError"), sha(12))
    cache.record_call(ok("C", 99.0), sha(20))
    if provider != "naver":
        cache.record_call(ApiResult(provider, "compare", "ok", similarity=85.0), sha(10), ref_sha256=sha(1))
        cache.record_call(ApiResult(provider, "compare", "ok", similarity=70.0), sha(10), ref_sha256=sha(2))
        cache.record_call(ApiResult(provider, "compare", "ok", similarity=90.0), sha(11), ref_sha256=sha(1))


def test_records_from_cache(cache):
    _fill_demo_cache(cache, "aws")
    records, report = attack_records_from_cache(cache, "aws", "D")
    assert report.n_fake_images == 5 and report.n_records == 3
    assert report.missing_call == ["D/fake/A/3"]
    assert report.errored_call == ["D/fake/A/2 (InternalServerError)"]
    by_key = records.set_index("image_key")
    assert by_key.loc["D/fake/A/0", ["target_name", "target_conf", "similarity"]].tolist() == [
        "A",
        85.0,
        77.5,
    ]
    assert by_key.loc["D/fake/A/1", "similarity"] == 90.0 and by_key.loc["D/fake/A/1", "fake_name"] == ""
    assert by_key.loc["D/fake/B/0", "target_name"] == "" and np.isnan(by_key.loc["D/fake/B/0", "target_conf"])
    m = compute_attack_metrics(records).iloc[0]
    assert (m["n_TA"], m["n_NA"], m["n_DHF"], m["n_DHC"], m["n_DHS"], m["n_SIC"]) == (1, 2, 2, 2, 1, 1)
    assert m["SIC"] == 0.5


def test_naver_records_have_no_similarity_and_dhs_is_unavailable(cache):
    _fill_demo_cache(cache, "naver")
    records, _ = attack_records_from_cache(cache, "naver", "D")
    assert records["similarity"].isna().all()
    metrics = compute_attack_metrics(records).iloc[0]
    assert np.isnan(metrics["DHS"]) and metrics["NA"] == pytest.approx(2 / 3)
