"""Logits of P(fake) and the temperature that rescales them, fitted on labelled clips."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize_scalar

TEMPERATURE_RANGE = (0.05, 20.0)
EPS = 1e-7


def logits_of(probs: np.ndarray, eps: float = EPS) -> np.ndarray:
    """log(p / (1 - p)), with p kept ``eps`` away from 0 and 1 (NaN stays NaN)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def scaled_probs(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Each P(fake) with its logit divided by ``temperature``."""
    return 1.0 / (1.0 + np.exp(-logits_of(probs) / temperature))


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    # binary cross-entropy on logits, written to stay finite for large |z|
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def fit_temperature(probs: Sequence[float], labels: Sequence[int]) -> tuple[float, float, float]:
    """The temperature minimising the clips' negative log-likelihood; with the NLL before and
    after."""
    logits, y = logits_of(np.asarray(probs)), np.asarray(labels, dtype=np.float64)
    lo, hi = (math.log(t) for t in TEMPERATURE_RANGE)
    best = minimize_scalar(lambda s: _nll(logits, y, math.exp(s)), bounds=(lo, hi), method="bounded")
    temperature = math.exp(best.x)
    return temperature, _nll(logits, y, 1.0), _nll(logits, y, temperature)
