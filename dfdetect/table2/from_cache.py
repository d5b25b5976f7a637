"""Attack records (``ATTACK_COLUMNS``) from the SQLite cache, for one provider and dataset.

For each fake image (``images.label = 1``) of the dataset: its ``recognize`` call gives the fake's
answer; the ``recognize`` calls on the real images (label 0) of its identity give X_T's answer
(voted, see ``target_answer``); its ``compare`` calls against those real images give the
similarity (mean of the answered ones). A fake whose own ``recognize`` call is missing or ended in
an error cannot be scored: it is left out and listed in the report, never counted as a failed
attack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from dfdetect.measure.cache import ApiCache, params_json
from dfdetect.measure.names import AliasTable, default_aliases
from dfdetect.measure.records import ATTACK_COLUMNS, AttackDataError, validate_attack_records
from dfdetect.measure.registry import get_provider
from dfdetect.measure.target_answer import vote_answers


@dataclass
class CacheReport:
    provider: str
    dataset: str
    n_fake_images: int = 0
    n_records: int = 0
    missing_call: list[str] = field(default_factory=list)
    errored_call: list[str] = field(default_factory=list)
    targets_without_real_image: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"{self.provider}/{self.dataset}: {self.n_fake_images} fake images, {self.n_records} scored,"
            f" {len(self.missing_call)} not yet queried, {len(self.errored_call)} with an API error"
        ]
        if self.targets_without_real_image:
            lines.append(
                f"  targets with no queried real image: {', '.join(self.targets_without_real_image)}"
            )
        return "\n".join(lines)


def _one_variant(calls: pd.DataFrame, operation: str, params: dict | None) -> pd.DataFrame:
    calls = calls[calls["operation"] == operation]
    if params is not None:
        return calls[calls["params_json"] == params_json(params)]
    variants = calls.groupby(["image_sha256", "ref_sha256"])["params_json"].nunique()
    if (variants > 1).any():
        sha, ref = variants[variants > 1].index[0]
        found = sorted(calls.loc[calls["image_sha256"] == sha, "params_json"].unique())
        raise AttackDataError(
            f"{operation} calls of image {sha} exist with several parameter sets {found}; pass the one to use"
        )
    return calls


def attack_records_from_cache(
    cache: ApiCache,
    provider: str,
    dataset: str,
    aliases: AliasTable | None = None,
    recognize_params: dict | None = None,
    compare_params: dict | None = None,
) -> tuple[pd.DataFrame, CacheReport]:
    has_similarity = get_provider(provider).has_similarity
    aliases = aliases or default_aliases()
    images = cache.images(dataset)
    if images.empty:
        raise AttackDataError(f"cache {cache.path}: no images registered for dataset {dataset!r}")
    calls = cache.calls(provider)
    recognize = _one_variant(calls, "recognize", recognize_params).set_index("image_sha256")
    compare = _one_variant(calls, "compare", compare_params)
    report = CacheReport(provider, dataset)

    real = images[images["label"] == 0].assign(identity_c=lambda d: d["identity"].map(aliases.canonical))
    real_answers = real.join(recognize[["status", "name_raw", "confidence"]], on="sha256", how="inner")
    real_answers = real_answers[real_answers["status"] != "error"]
    answers = vote_answers(
        pd.DataFrame(
            {
                "identity": real_answers["identity_c"],
                "name": real_answers["name_raw"].fillna(""),
                "conf": real_answers["confidence"].astype(float),
            }
        ).drop_duplicates(),
        aliases,
    )
    real_shas = real.groupby("identity_c")["sha256"].agg(set)

    rows = []
    fakes = images[images["label"] == 1]
    report.n_fake_images = len(fakes)
    for fake in fakes.itertuples(index=False):
        if fake.sha256 not in recognize.index:
            report.missing_call.append(fake.image_key)
            continue
        call = recognize.loc[fake.sha256]
        if call["status"] == "error":
            report.errored_call.append(f"{fake.image_key} ({call['error_code']})")
            continue
        identity = aliases.canonical(fake.identity)
        target_name, target_conf = ("", math.nan)
        if identity in answers.index:
            target_name, target_conf = answers.loc[identity, ["target_name", "target_conf"]]
        elif fake.identity not in report.targets_without_real_image:
            report.targets_without_real_image.append(fake.identity)
        similarity = math.nan
        if has_similarity:
            mine = compare[
                (compare["image_sha256"] == fake.sha256)
                & compare["ref_sha256"].isin(real_shas.get(identity, set()))
            ]
            if mine["similarity"].notna().any():
                similarity = float(mine["similarity"].mean())
        rows.append(
            {
                "provider": provider,
                "dataset": dataset,
                "image_key": fake.image_key,
                "target": fake.identity,
                "fake_name": call["name_raw"] or "",
                "fake_conf": call["confidence"],
                "target_name": target_name,
                "target_conf": target_conf,
                "similarity": similarity,
                "source": f"cache:{fake.sha256[:12]}",
            }
        )
    records = validate_attack_records(pd.DataFrame(rows, columns=ATTACK_COLUMNS), where=f"cache {cache.path}")
    report.n_records = len(records)
    return records, report
