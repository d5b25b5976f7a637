"""Classifiers over frozen descriptors (FaceCure's protocol): multinomial logistic regression (the
linear probe) and 1-nearest-neighbour (Euclidean). ``fit(chips, labels)`` / ``predict(chips)`` on
uint8 chips, like the end-to-end model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dfdetect.puface.faceid.features import embed


class FeatureClassifier:
    kinds = ("linear", "nn")

    def __init__(self, net: nn.Module, kind: str = "linear", c: float = 10.0, device: str = "cpu"):
        if kind not in self.kinds:
            raise ValueError(f"kind must be one of {self.kinds}, got {kind!r}")
        self.net, self.kind, self.c, self.device = net, kind, c, device

    def fit_features(self, feats: np.ndarray, labels: np.ndarray) -> FeatureClassifier:
        if self.kind == "linear":
            from sklearn.linear_model import LogisticRegression

            self.model = LogisticRegression(C=self.c, max_iter=5000).fit(feats, labels)
        else:
            self.train_feats, self.train_labels = np.asarray(feats, np.float32), np.asarray(labels)
        return self

    def predict_features(self, feats: np.ndarray) -> np.ndarray:
        if self.kind == "linear":
            return self.model.predict(feats)
        d = torch.cdist(torch.as_tensor(feats, dtype=torch.float32), torch.from_numpy(self.train_feats))
        return self.train_labels[d.argmin(1).numpy()]

    def fit(self, chips: torch.Tensor, labels) -> FeatureClassifier:
        return self.fit_features(embed(self.net, chips, device=self.device).numpy(), np.asarray(labels))

    def predict(self, chips: torch.Tensor) -> np.ndarray:
        return self.predict_features(embed(self.net, chips, device=self.device).numpy())
