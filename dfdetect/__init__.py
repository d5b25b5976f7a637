"""dfdetect: deepfake detectors as a defense for celebrity-recognition web APIs."""

__version__ = "0.1.0"
