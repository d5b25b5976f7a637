"""What a prediction run says at the end: counts of verdicts and of the reasons files got none,
and, when the input carries labels, the file-level AUC, accuracy and confusion at the threshold."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from dfdetect.predict.verdict import FileVerdict
from dfdetect.scoring.roc import auc


def summary(verdicts: Sequence[FileVerdict]) -> dict:
    reasons = Counter(v.reason.split(":", 1)[0] for v in verdicts if v.verdict == "unknown")
    return {
        "files": len(verdicts),
        "verdicts": dict(Counter(v.verdict for v in verdicts)),
        "unknown_reasons": dict(reasons),
    }


def labelled_metrics(verdicts: Sequence[FileVerdict]) -> dict | None:
    """None when no scored file has a label. AUC is null with one class only."""
    scored = [v for v in verdicts if v.label is not None and v.p_fake is not None]
    if not scored:
        return None
    labels = np.array([v.label for v in scored])
    scores = np.array([v.p_fake for v in scored])
    called = np.array([v.verdict == "fake" for v in scored])
    both = len(set(labels.tolist())) == 2
    return {
        "labelled_files": sum(v.label is not None for v in verdicts),
        "scored": len(scored),
        "auc": auc(scores, labels) if both else None,
        "accuracy": float(np.mean(called == (labels == 1))),
        "confusion": {
            "real_called_real": int(np.sum(~called & (labels == 0))),
            "real_called_fake": int(np.sum(called & (labels == 0))),
            "fake_called_real": int(np.sum(~called & (labels == 1))),
            "fake_called_fake": int(np.sum(called & (labels == 1))),
        },
        "threshold": scored[0].threshold,
    }


def lines(stats: dict, metrics: dict | None) -> list[str]:
    out = [
        f"predict: {stats['files']} files: "
        + ", ".join(f"{k} {stats['verdicts'].get(k, 0)}" for k in ("fake", "real", "unknown"))
    ]
    if stats["unknown_reasons"]:
        out.append("  unknown: " + ", ".join(f"{k} {n}" for k, n in sorted(stats["unknown_reasons"].items())))
    if stats.get("cached"):
        out.append(f"  from the cache (the same bytes scored before by this model): {stats['cached']}")
    if stats.get("hidden_skipped"):
        out.append(
            f"  skipped: {stats['hidden_skipped']} hidden file(s) or folder(s) (names starting with '.'; "
            "name them in input= to judge them)"
        )
    if metrics:
        auc = "n/a (one class)" if metrics["auc"] is None else f"{metrics['auc']:.4f}"
        c = metrics["confusion"]
        out.append(
            f"  labelled: {metrics['scored']} scored of {metrics['labelled_files']}; video AUC {auc}, "
            f"accuracy {metrics['accuracy']:.4f} at threshold {metrics['threshold']:.4f}"
        )
        out.append(
            f"  confusion: real->real {c['real_called_real']}, real->fake {c['real_called_fake']}, "
            f"fake->real {c['fake_called_real']}, fake->fake {c['fake_called_fake']}"
        )
    return out
