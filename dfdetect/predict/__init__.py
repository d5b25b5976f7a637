"""Verdicts on files: the face pipeline in memory, a detector's clip scores, aggregation per face
track and per file, thresholds from calibration (``predict.py``; ``serve.py`` serves the same
predictor)."""

from dfdetect.predict.predictor import Predictor, predictor_from_config
from dfdetect.predict.prepared import REASONS, PreparedClip, PreparedFile
from dfdetect.predict.verdict import FileVerdict

__all__ = ["REASONS", "FileVerdict", "PreparedClip", "PreparedFile", "Predictor", "predictor_from_config"]
