"""The API's answer for a target identity X_T when several real images of it were queried.

The distinct real images vote: the name is the most frequent answered name (ties: higher mean
confidence, then alphabetical), and the confidence is the mean over all the real images, an image
with no answer counting as 0 (the README's DHF rule, applied per image). An identity none of whose
real images got a name has no answer: no name, NaN confidence.
"""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd

from dfdetect.measure.names import AliasTable


def vote_answers(real: pd.DataFrame, aliases: AliasTable) -> pd.DataFrame:
    """``real``: one row per distinct real image with ``identity`` (canonical), ``name``, ``conf``
    (0–100, NaN for no answer). Returns ``target_name, target_conf`` indexed by identity."""
    answers = {}
    for identity, group in real.groupby("identity", sort=False):
        canonical = group["name"].map(aliases.canonical)
        named = group[canonical != ""].assign(name_c=canonical[canonical != ""])
        if named.empty:
            answers[identity] = ("", math.nan)
            continue
        votes = Counter(named["name_c"])
        top = max(votes.values())
        mean_conf = named.groupby("name_c")["conf"].mean()
        chosen = sorted((n for n in votes if votes[n] == top), key=lambda n: (-mean_conf[n], n))[0]
        display = named.loc[named["name_c"] == chosen, "name"].iloc[0]
        answers[identity] = (display, float(group["conf"].fillna(0.0).mean()))
    return pd.DataFrame.from_dict(answers, orient="index", columns=["target_name", "target_conf"])
