"""Where things are: the package's configs, the project directory (outputs) and the shared data
beside a checkout (benchmarks and tests read it from there, never copy it)."""

from __future__ import annotations

import os
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def project_root() -> Path:
    """Outputs go under here: ``DFDETECT_ROOT`` (the root aliases set it to their checkout), else
    the current directory."""
    return Path(os.environ.get("DFDETECT_ROOT") or Path.cwd())


def shared_dir() -> Path:
    """The data, weights and papers shared with the project: ``DFDETECT_SHARED``, else
    ``../shared`` beside the project root."""
    return Path(os.environ.get("DFDETECT_SHARED") or project_root().parent / "shared")
