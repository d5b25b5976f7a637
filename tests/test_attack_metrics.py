"""Attack metrics (TA, NA, DHF, DHC, DHS, SIC), the tariq2022 importer, after-defense figures and
scripts/rescore.py."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfdetect.measure.names import AliasTable, default_aliases, normalise_name
from dfdetect.measure.records import ATTACK_COLUMNS, AttackDataError
from dfdetect.table2.metrics import (
    after_defense,
    bootstrap_ci,
    compute_attack_metrics,
    fig4_convention,
    join_predictions,
    prediction_keys,
)
from dfdetect.table2.tariq2022 import image_key, read_tariq2022

ROOT = Path(__file__).resolve().parents[1]
TARIQ = ROOT.parent / "shared" / "data" / "api_results" / "tariq2022"
needs_tariq = pytest.mark.skipif(
    not TARIQ.is_dir(), reason=f"paper authors' API results not found at {TARIQ}"
)
HEADER = "Filename,Src,Tar,Src Pred.,Src Conf.,Tar Pred.,Tar Conf.,Similarity"


def make_records(rows: list[dict], provider: str = "aws", dataset: str = "D") -> pd.DataFrame:
    defaults = {
        "provider": provider,
        "dataset": dataset,
        "fake_name": "",
        "fake_conf": math.nan,
        "target_name": "",
        "target_conf": math.nan,
        "similarity": math.nan,
        "source": "test",
    }
    full = [{**defaults, "image_key": f"{dataset}/{i}", **row} for i, row in enumerate(rows)]
    return pd.DataFrame(full)[ATTACK_COLUMNS]


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------- names
def test_name_normalisation_and_aliases():
    assert normalise_name("  Beyoncé  Knowles ") == normalise_name("beyonce-knowles") == "beyonceknowles"
    assert normalise_name("Carrie-Anne Moss") == normalise_name("CARRIE ANNE MOSS.")
    assert (
        normalise_name("수지") == "수지" and normalise_name(float("nan")) == "" and normalise_name(None) == ""
    )
    aliases = default_aliases()
    assert aliases.same("Katie Perry", "katy perry") and aliases.same("Amir Khan", "Aamir Khan")
    assert not aliases.same("Emma Watson", "Emma Stone") and not aliases.same("", "")
    chained = AliasTable([("a b", "c"), ("c", "d")])
    assert chained.canonical("A-B") == "d"


def test_alias_file_errors_name_the_line(tmp_path):
    path = tmp_path / "aliases.csv"
    path.write_text("alias,canonical\n# a comment\nKatie Perry,Katy Perry\nonly one field\n")
    with pytest.raises(ValueError, match=r"aliases.csv: line 4: expected 2 fields"):
        AliasTable.from_csv(path)
    path.write_text("alias,canonical\n,Katy Perry\n")
    with pytest.raises(ValueError, match="line 2: .*empty name"):
        AliasTable.from_csv(path)


# -------------------------------------------------------------------------------------- metrics
def test_each_metric_follows_its_rule():
    records = make_records(
        [
            # TA: the fake's name equals the API's name for X_T (an alias spelling counts)
            {
                "target": "Katy Perry",
                "fake_name": "Katie Perry",
                "fake_conf": 95.0,
                "target_name": "Katy Perry",
                "target_conf": 99.0,
            },
            # named after the dataset label but X_T was named otherwise: NA, not TA; DHF: 91 > 90
            {
                "target": "Katy Perry",
                "fake_name": "Katy Perry",
                "fake_conf": 91.0,
                "target_name": "Zooey Deschanel",
                "target_conf": 90.0,
            },
            # X_T with no answer counts as confidence 0 for DHF; DHC needs > 90 strictly
            {"target": "Tom Hanks", "fake_name": "Tom Hanks", "fake_conf": 90.0},
            # not named: DHS when the similarity exceeds 80; 80 itself does not count
            {"target": "Tom Hanks", "similarity": 80.5, "target_name": "Tom Hanks", "target_conf": 99.0},
            {"target": "Tom Hanks", "similarity": 80.0},
            # no similarity answer (NaN) is not a similarity of 0 and never DHS
            {"target": "Will Smith"},
        ]
    )
    m = compute_attack_metrics(records).iloc[0]
    assert (m["n_fake"], m["n_targets"]) == (6, 3)
    assert (m["n_TA"], m["n_NA"], m["n_DHF"], m["n_DHC"], m["n_DHS"], m["n_SIC"]) == (1, 3, 2, 2, 1, 1)
    assert m["TA"] == pytest.approx(1 / 6) and m["SIC"] == pytest.approx(1 / 3)
    loose = compute_attack_metrics(records, beta=89.0, gamma=79.0).iloc[0]
    assert (loose["n_DHC"], loose["n_DHS"]) == (3, 2)
    fig4 = fig4_convention(compute_attack_metrics(records)).iloc[0]
    assert fig4["DHC"] == pytest.approx(2 / 3) and fig4["DHS"] == pytest.approx(1 / 2)


def test_records_are_validated():
    good = make_records([{"target": "A", "fake_name": "A", "fake_conf": 50.0}])
    with pytest.raises(AttackDataError, match="unknown provider"):
        compute_attack_metrics(good.assign(provider="alibaba"))
    with pytest.raises(AttackDataError, match="fake_conf 150.0 outside 0–100 for image 'D/0'"):
        compute_attack_metrics(good.assign(fake_conf=150.0))
    with pytest.raises(AttackDataError, match="missing columns"):
        compute_attack_metrics(good.drop(columns=["similarity"]))


def test_bootstrap_resamples_celebrities():
    rng = np.random.default_rng(1)
    rows = [
        {
            "target": f"T{i % 20}",
            "fake_name": f"T{i % 20}" if rng.random() < 0.3 else "",
            "fake_conf": 95.0,
            "target_name": f"T{i % 20}",
            "target_conf": 99.0,
        }
        for i in range(400)
    ]
    rows = [r if r["fake_name"] else {**r, "fake_conf": math.nan} for r in rows]
    records = make_records(rows)
    ci = bootstrap_ci(records, n_boot=300, seed=3)
    assert ci.equals(bootstrap_ci(records, n_boot=300, seed=3))
    ta = ci.set_index("metric").loc["TA"]
    assert ta["lo"] < ta["estimate"] < ta["hi"] and 0.0 <= ta["lo"] and ta["hi"] <= 1.0
    one_celebrity = make_records([{**r, "target": "T0", "target_name": "T0"} for r in rows[:50]])
    single = bootstrap_ci(one_celebrity, n_boot=50, seed=0).set_index("metric")
    assert (single["lo"] == single["estimate"]).all() and (single["hi"] == single["estimate"]).all()


# ------------------------------------------------------------------------------ after defense
def joint_data(n: int, p_fool: float, pass_if_fooled: float, pass_otherwise: float, frr: float, seed: int):
    """Fake images that fool the API with probability p_fool and pass the detector with the given
    probabilities, plus as many real images flagged fake with probability ``frr``."""
    rng = np.random.default_rng(seed)
    fooled = rng.random(n) < p_fool
    passed = rng.random(n) < np.where(fooled, pass_if_fooled, pass_otherwise)
    targets = np.array([f"T{i % 50}" for i in range(n)])
    records = pd.DataFrame(
        {
            "provider": "aws",
            "dataset": "S",
            "image_key": [f"S/fake/{i}" for i in range(n)],
            "target": targets,
            "fake_name": np.where(fooled, targets, ""),
            "fake_conf": np.where(fooled, 95.0, np.nan),
            "target_name": targets,
            "target_conf": 99.0,
            "similarity": np.nan,
            "source": "synthetic",
        }
    )
    real_keys = [f"S/real/{i}" for i in range(n)]
    keys = list(records["image_key"]) + real_keys
    prob = np.concatenate([np.where(passed, 0.2, 0.8), np.where(rng.random(n) < frr, 0.7, 0.3)])
    predictions = pd.DataFrame(
        {
            "clip_id": [f"{k}/0" for k in keys],
            "video_id": keys,
            "dataset": "S",
            "method": ["fom"] * n + ["real"] * n,
            "label": [1] * n + [0] * n,
            "prob": prob,
        }
    )
    return records, predictions, fooled & passed


def test_per_image_agrees_with_formula_when_detector_errors_are_independent():
    n = 20000
    records, predictions, truth = joint_data(
        n, p_fool=0.4, pass_if_fooled=0.1, pass_otherwise=0.1, frr=0.1, seed=0
    )
    out, report = after_defense(records, predictions)
    row = out.iloc[0]
    assert report.n_joined == n and report.n_unjoined == 0
    assert row["TA_after_per_image"] == pytest.approx(truth.mean())
    se = math.sqrt(0.04 * 0.96 / n)
    assert abs(row["TA_after_per_image"] - row["TA_after_formula"]) < 4 * math.sqrt(2) * se
    assert row["accuracy"] == pytest.approx(0.9, abs=0.01) and row["frr"] == pytest.approx(0.1, abs=0.01)


def test_per_image_differs_from_formula_when_errors_are_correlated():
    n = 20000
    # the detector misses only images that also fool the API: same 10 % miss rate, 2.5x the harm
    records, predictions, truth = joint_data(
        n, p_fool=0.4, pass_if_fooled=0.25, pass_otherwise=0.0, frr=0.1, seed=1
    )
    out, _ = after_defense(records, predictions)
    row = out.iloc[0]
    assert row["accuracy"] == pytest.approx(0.9, abs=0.01)
    assert row["TA_after_per_image"] == pytest.approx(truth.mean())  # the exact count of successes
    assert row["TA_after_per_image"] == pytest.approx(0.10, abs=0.01)
    assert row["TA_after_formula"] == pytest.approx(0.04, abs=0.005)
    se = math.sqrt(0.1 * 0.9 / n)
    assert row["TA_after_per_image"] - row["TA_after_formula"] > 10 * se
    assert row["n_passed"] == int((predictions["prob"][:n] < 0.5).sum())


def test_join_reports_and_strict_mode_names_missing_keys():
    records, predictions, _ = joint_data(200, 0.5, 0.5, 0.5, 0.1, seed=2)
    dropped = predictions.drop(index=[3, 7])
    out, report = after_defense(records, dropped, accuracy=0.9)
    assert (report.n_records, report.n_joined, report.n_unjoined) == (200, 198, 2)
    assert report.missing_keys == ["S/fake/3", "S/fake/7"] and "198 of 200" in report.summary()
    assert out.iloc[0]["n_joined"] == 198 and out.iloc[0]["n_fake"] == 200
    with pytest.raises(
        AttackDataError, match=r"2 attack image key\(s\) have no detector prediction: 'S/fake/3', 'S/fake/7'"
    ):
        after_defense(records, dropped, strict=True)
    relabelled = predictions.assign(
        label=np.where(predictions["video_id"] == "S/fake/5", 0, predictions["label"])
    )
    with pytest.raises(AttackDataError, match="'S/fake/5' is labelled real"):
        join_predictions(records, relabelled)
    with pytest.raises(ValueError, match="a percentage"):
        after_defense(records, accuracy=97.5)
    formula_only, no_report = after_defense(records, accuracy=0.75)
    assert no_report is None
    assert formula_only.iloc[0]["NA_after_formula"] == pytest.approx(formula_only.iloc[0]["NA_before"] * 0.25)
    assert np.isnan(formula_only.iloc[0]["SIC_after_formula"])


def test_join_report_of_thousands_of_unjoined_keys_stays_short():
    """As seen (issue 20, item 7): all 7,078 missing keys on one ~300 KB log line."""
    records, predictions, _ = joint_data(7078, 0.5, 0.5, 0.5, 0.1, seed=3)
    other = predictions.assign(video_id="demo/" + predictions["video_id"], dataset="demo")
    out, report = after_defense(records, other, accuracy=0.93)
    assert (report.n_joined, report.n_unjoined, len(report.missing_keys)) == (0, 7078, 7078)
    text = report.summary()
    assert len(text) < 400 and str(report) == repr(report) == text
    assert "0 of 7078 attack images joined" in text and "'S/fake/2' and 7075 more" in text
    assert "aws/S: 0 of 7078" in text and "'S/fake/3'" not in text
    assert out.iloc[0]["n_joined"] == 0 and np.isnan(out.iloc[0]["TA_after_per_image"])
    with pytest.raises(AttackDataError, match=r"^7078 attack image key\(s\) .*'S/fake/4' and 7073 more$"):
        after_defense(records, other, strict=True)


def test_video_clips_are_averaged_per_key():
    records = make_records([{"target": "A", "fake_name": "A", "fake_conf": 95.0, "target_name": "A"}])
    predictions = pd.DataFrame(
        {"clip_id": ["D/0/0", "D/0/5"], "video_id": ["D/0", "D/0"], "label": [1, 1], "prob": [0.3, 0.5]}
    )
    out, _ = after_defense(records, predictions, accuracy=0.5)
    assert out.iloc[0]["TA_after_per_image"] == 1.0  # mean 0.4 < 0.5: passed as real
    out, _ = after_defense(records, predictions.assign(prob=[0.4, 0.8]), accuracy=0.5)
    assert out.iloc[0]["TA_after_per_image"] == 0.0


def test_clip_keys_join_their_own_clip_and_video_keys_the_mean():
    predictions = pd.DataFrame(
        {
            "clip_id": ["v/0", "v/1", "w/0"],
            "video_id": ["v", "v", "w"],
            "dataset": "D",
            "image_key": ["D/v", "D/v", "D/w"],
            "label": [1, 1, 0],
            "prob": [0.2, 0.6, 0.1],
        }
    )
    keyed = prediction_keys(predictions).set_index("image_key")["prob"]
    assert keyed.to_dict() == pytest.approx(
        {"D/v": 0.4, "D/w": 0.1, "D/v/0": 0.2, "D/v/1": 0.6, "D/w/0": 0.1}
    )
    records = make_records([{"target": "A", "fake_name": "A", "fake_conf": 95.0, "target_name": "A"}] * 2)
    records["image_key"] = ["D/v/0", "D/v/1"]
    out, report = after_defense(records, predictions, accuracy=0.5)
    assert (
        report.n_joined == 2 and out.iloc[0]["TA_after_per_image"] == 0.5
    )  # clip 0 passes, clip 1 is caught


# ------------------------------------------------------------------------------ tariq importer
CELEBDF_ROWS = [
    # real image of A answered A (0.9) / A (0.7); of B answered B (0.8) / nothing
    "/r/Similarity/CelebDF v2/A/id0_0000/B_fake.png,A,B,A,0.9,B,0.95,0.85",
    "/r/Similarity/CelebDF v2/A/id0_0001/B_fake.png,A,B,A,0.7,,,0",
    "/r/Similarity/CelebDF v2/B/id1_0000/A_fake.png,B,A,B,0.8,A,0.75,0.5",
    "/r/Similarity/CelebDF v2/B/id1_0001/A_fake.png,B,A,,,,,0.9",
]


def test_celebdf_targets_tar_and_votes_over_the_targets_real_images(tmp_path):
    path = write_csv(tmp_path / "Results_celebDF.csv", CELEBDF_ROWS)
    records, report = read_tariq2022(path, "azure", "CelebDF")
    assert (report.target_column, report.target_answer, report.n_imported) == ("Tar", "identity", 4)
    assert report.n_similarity_zero == 1
    assert records["target"].tolist() == ["B", "B", "A", "A"]
    assert records["target_conf"].tolist() == pytest.approx([40.0, 40.0, 80.0, 80.0])  # no answer counts 0
    assert records["similarity"].isna().tolist() == [False, True, False, False]
    m = compute_attack_metrics(records).iloc[0]
    assert (m["n_TA"], m["n_NA"], m["n_DHF"], m["n_DHC"], m["n_DHS"], m["SIC"]) == (2, 2, 1, 1, 1, 1.0)

    same_row, _ = read_tariq2022(path, "azure", "CelebDF", target_answer="same_row")
    m = compute_attack_metrics(same_row).iloc[0]
    assert (m["n_TA"], m["n_DHF"]) == (0, 1)  # row 1's X_T answer is A at 90: the fake (B) is not TA


def test_src_files_use_the_same_row_and_aws_scale(tmp_path):
    path = write_csv(
        tmp_path / "AWS_Results_CelebDPR.csv",
        [
            "/home/sha/project/adversarial_deepfake/src/Similarity/CelebDPR/fake/Bae Suzy/1.jpg,Bae Suzy,Bae Suzy,"
            "Bae Suzy,100.0,Bae Suzy,93.0,85.5",
            "/home/sha/project/adversarial_deepfake/src/Similarity/CelebDPR/fake/Bae Suzy/2.jpg,Bae Suzy,Bae Suzy,"
            "Bae Suzy,99.0,,,0.19",
        ],
    )
    records, report = read_tariq2022(path, "aws", "FCelebDF")
    assert report.target_answer == "same_row"
    assert records["image_key"].tolist() == ["FCelebDF/fake/Bae Suzy/1", "FCelebDF/fake/Bae Suzy/2"]
    assert records["fake_conf"].iloc[0] == 93.0 and records["similarity"].tolist() == [85.5, 0.19]
    assert image_key("C:\\data\\x\\y.png", "D") == "D/C:/data/x/y"
    with pytest.raises(AttackDataError, match="looks like a 0–1 \\(Azure\\) file"):
        read_tariq2022(write_csv(tmp_path / "Results_FOM.csv", ["/a/b.png,A,B,A,0.9,A,0.8,0.7"]), "aws", "X")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/a/3.png,A,A,A,0.9,A,0.8,0.7,extra", r"line 3: expected 8 fields, found 9"),
        ("/a/3.png,A,A,A,0.9,A,abc,0.7", r"line 3: Tar Conf\. 'abc' is not a number"),
        ("/a/3.png,A,A,A,0.9,A,1.5,0.7", r"line 3: Tar Conf\. 1.5 is outside 0–1"),
        ("/a/3.png,A,A,A,0.9,A,,0.7", r"line 3: Tar Pred\. 'A' and Tar Conf\. '': one is missing"),
        ("/a/1.png,A,A,A,0.9,A,0.8,0.7", r"line 3: duplicate Filename '/a/1.png'"),
        ("/a/3.png,,,A,0.9,A,0.8,0.7", r"line 3: empty Filename or Src"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, line, message):
    path = write_csv(
        tmp_path / "Results_FOM.csv", ["/a/1.png,A,A,A,0.9,A,0.8,0.7", line, "/a/4.png,A,A,A,0.9,,,0"]
    )
    with pytest.raises(AttackDataError, match="Results_FOM.csv: " + message):
        read_tariq2022(path, "azure", "CelebFOM")
    records, report = read_tariq2022(path, "azure", "CelebFOM", errors="skip")
    assert (report.n_rows, report.n_imported, len(report.skipped)) == (3, 2, 1)
    assert report.skipped[0].startswith("Results_FOM.csv:3: ") and "1 skipped" in report.summary()
    assert records["source"].tolist() == ["Results_FOM.csv:2", "Results_FOM.csv:4"]


def test_importer_rejects_bad_arguments(tmp_path):
    path = write_csv(tmp_path / "Results_FOM.csv", ["/a/1.png,A,A,A,0.9,A,0.8,0.7"])
    with pytest.raises(AttackDataError, match="unknown provider 'alibaba'"):
        read_tariq2022(path, "alibaba", "X")
    with pytest.raises(AttackDataError, match="no such CSV file"):
        read_tariq2022(tmp_path / "nope.csv", "aws", "X")
    (tmp_path / "bad_header.csv").write_text("Filename,Src\n/a,A\n")
    with pytest.raises(AttackDataError, match=r"missing columns \['Tar'"):
        read_tariq2022(tmp_path / "bad_header.csv", "aws", "X")


# ------------------------------------------------------------------- the authors' real results
PAPER_FILES = {
    "AWS_Results_CelebDPR.csv": ("aws", "FCelebDF", 4902, 50),
    "Results_CelebDPR.csv": ("azure", "FCelebDF", 2922, 30),
    "Results_celebDF.csv": ("azure", "CelebDF", 5639, 57),
    "Results_vox1.csv": ("azure", "VoxCelebTH", 1600, 50),
    "Results_FOM.csv": ("azure", "CelebFOM", 2176, 58),
    "Results_FaceApp.csv": ("azure", "CelebBlend", 179, 20),
}


@pytest.fixture(scope="module")
def paper_metrics():
    out = {}
    for name, (provider, dataset, _, _) in PAPER_FILES.items():
        records, report = read_tariq2022(TARIQ / name, provider, dataset)
        out[name] = (compute_attack_metrics(records).iloc[0], report)
    return out


@needs_tariq
def test_every_authors_file_imports_completely(paper_metrics):
    for name, (_, _, n_rows, n_targets) in PAPER_FILES.items():
        metrics, report = paper_metrics[name]
        assert (report.n_rows, report.n_imported, report.skipped) == (n_rows, n_rows, [])
        assert (metrics["n_fake"], metrics["n_targets"]) == (n_rows, n_targets)
        assert all(0.0 <= metrics[m] <= 1.0 for m in ("TA", "NA", "DHF", "DHC", "DHS", "SIC"))


@needs_tariq
def test_readme_rules_on_the_authors_files(paper_metrics):
    aws = paper_metrics["AWS_Results_CelebDPR.csv"][0]
    assert (aws["n_TA"], aws["n_NA"], aws["n_DHS"], aws["n_SIC"]) == (521, 1639, 993, 35)
    vox = paper_metrics["Results_vox1.csv"][0]
    assert (vox["n_TA"], vox["n_NA"], vox["n_DHC"]) == (1187, 1252, 1083)
    celebdf = paper_metrics["Results_celebDF.csv"][0]
    assert (celebdf["n_TA"], celebdf["n_NA"], celebdf["n_SIC"]) == (1104, 1261, 52)


@needs_tariq
@pytest.mark.parametrize(
    ("name", "target_answer", "metric", "paper_pct", "ours"),
    [
        ("Results_vox1.csv", "auto", "DHC", 86.5, 0.8650),  # §5.4: MS DHC up to 86.5 %
        ("Results_CelebDPR.csv", "auto", "DHC", 42.0, 0.4167),  # §5.4: MS DHC from 42 %
        ("AWS_Results_CelebDPR.csv", "auto", "DHS", 30.0, 0.3044),  # §5.4: AWS DHS from 30 %
        ("Results_FOM.csv", "auto", "DHS", 52.6, 0.5261),  # §5.4: MS DHS on CelebFOM 52.6 %
        ("Results_celebDF.csv", "same_row", "DHF", 18.2, 0.1816),  # §5.4: MS DHF on CelebDF 18.2 %
    ],
)
def test_fig4_convention_reproduces_the_papers_quoted_numbers(name, target_answer, metric, paper_pct, ours):
    provider, dataset, _, _ = PAPER_FILES[name]
    records, _ = read_tariq2022(TARIQ / name, provider, dataset, target_answer=target_answer)
    value = fig4_convention(compute_attack_metrics(records)).iloc[0][metric]
    assert value == pytest.approx(ours, abs=5e-5)
    assert round(100 * value, 1) == pytest.approx(paper_pct, abs=0.5)


# ----------------------------------------------------------------------------------- rescore.py
def load_rescore():
    return importlib.import_module("dfdetect.tasks.rescore")


def test_rescore_writes_the_metrics_table(tmp_path):
    rescore = load_rescore()
    path = write_csv(tmp_path / "Results_celebDF.csv", CELEBDF_ROWS)
    out = tmp_path / "out"
    assert (
        rescore.main(
            [
                "--tariq2022",
                str(path),
                "--provider",
                "azure",
                "--dataset",
                "CelebDF",
                "--out",
                str(out),
                "--bootstrap",
                "20",
                "--fig4",
            ]
        )
        == 0
    )
    table = pd.read_csv(out / "attack_metrics.csv", keep_default_na=False)
    assert list(table.columns) == ["provider", "dataset", "n_fake", "TA", "NA", "DHF", "DHC", "DHS", "SIC"]
    assert table.iloc[0][["TA", "NA", "DHF", "DHC", "DHS", "SIC"]].tolist() == [
        0.5,
        0.5,
        0.25,
        0.25,
        0.25,
        1.0,
    ]
    ci = rescore.read_table(out / "attack_metrics_ci.csv")
    assert sorted(ci["metric"]) == sorted(["TA", "NA", "DHF", "DHC", "DHS", "SIC"])
    # a second run for another dataset adds its row and keeps the first
    rescore.main(["--tariq2022", str(path), "--provider", "azure", "--dataset", "Other", "--out", str(out)])
    assert pd.read_csv(out / "attack_metrics.csv")["dataset"].tolist() == ["CelebDF", "Other"]


def test_rescore_errors_are_clear(tmp_path, capsys):
    rescore = load_rescore()
    path = write_csv(tmp_path / "Results_FOM.csv", ["/a/1.png,A,A,A,0.9,A,0.8,0.7,oops"])
    args = ["--tariq2022", str(path), "--dataset", "CelebFOM", "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exit_info:
        rescore.main([*args, "--provider", "azure"])
    assert exit_info.value.code == 2
    assert "Results_FOM.csv: line 2: expected 8 fields, found 9" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        rescore.main([*args, "--provider", "naver"])
    assert exit_info.value.code == 2 and "invalid choice: 'naver'" in capsys.readouterr().err
    assert not (tmp_path / "o" / "attack_metrics.csv").exists()
