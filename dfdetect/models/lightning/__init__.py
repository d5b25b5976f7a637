"""Training, scoring and checkpoints of detectors: ``DetectorModule`` and its subclasses, the
detection metrics, and the safe checkpoint loader."""

from dfdetect.models.lightning.detector_module import DetectorModule

__all__ = ["DetectorModule"]
