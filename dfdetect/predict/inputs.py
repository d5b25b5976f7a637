"""What ``predict.py input=`` names, as a list of files to score: one video or image, a folder
(every file below it, so that files of other types get a row too), a glob, or a CSV with a ``path``
column (and optionally ``label``). Labels, when the input has them, come from a ``label`` column or
from ``real/`` and ``fake/`` folders (or FaceForensics++'s ``original``/``manipulated``); they only
serve the metrics printed at the end."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dfdetect.preprocess.media import media_kind
from dfdetect.utils.errors import UserError

# folder names that give a label: real/fake, and FaceForensics++'s layouts
LABEL_FOLDERS = {
    "real": 0,
    "fake": 1,
    "original": 0,
    "original_sequences": 0,
    "manipulated": 1,
    "manipulated_sequences": 1,
}
LABEL_VALUES = {"0": 0, "1": 1, "real": 0, "fake": 1, "false": 0, "true": 1}


class InputError(UserError, ValueError):
    """An input that names nothing to score."""


@dataclass(frozen=True)
class InputItem:
    path: str
    kind: str  # "video", "image" or "other"
    label: int | None = None


def kind_of(path: str | os.PathLike) -> str:
    return media_kind(path) or "other"


def _folder_label(rel: Path) -> int | None:
    for part in rel.parts[:-1]:
        if part.lower() in LABEL_FOLDERS:
            return LABEL_FOLDERS[part.lower()]
    return None


class Inputs(list):
    """The listed files; ``hidden`` counts what a folder walk left out (names starting with '.')."""

    hidden: int = 0


def _walk(root: Path) -> Inputs:
    """Every file below ``root``, following links to folders but entering each real folder once (a
    link loop such as ``l -> .`` is not walked again)."""
    items = Inputs()
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        items.hidden += sum(1 for d in dirnames if d.startswith("."))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                items.hidden += 1
                continue
            path = Path(dirpath) / name
            items.append(InputItem(str(path), kind_of(path), _folder_label(path.relative_to(root))))
    return items


def _from_csv(csv_path: Path) -> list[InputItem]:
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    if "path" not in table.columns:
        raise InputError(f"{csv_path}: a CSV input needs a 'path' column (and optionally 'label')")
    items = []
    for n, row in table.iterrows():
        path = Path(row["path"].strip()).expanduser()
        path = path if path.is_absolute() else csv_path.parent / path
        label = None
        if "label" in table.columns and row["label"].strip():
            label = LABEL_VALUES.get(row["label"].strip().lower())
            if label is None:
                raise InputError(f"{csv_path}:{n + 2}: label must be 0/1 or real/fake, got {row['label']!r}")
        items.append(InputItem(str(path), kind_of(path), label))
    return items


def list_inputs(spec: str | os.PathLike | None) -> list[InputItem]:
    """The files ``spec`` names, in a stable order; raises :class:`InputError` when it names none."""
    text = "" if spec is None else str(spec).strip()
    if not text:
        raise InputError(
            "input= is empty: name a video, image, folder, glob or CSV (input=. for this folder)"
        )
    path = Path(text).expanduser()
    if path.is_dir():
        items = _walk(path)
    elif path.suffix.lower() == ".csv" and path.is_file():
        items = _from_csv(path)
    elif path.is_file() or path.is_symlink():  # a broken link still gets its row
        items = [InputItem(str(path), kind_of(path))]
    elif glob.has_magic(text):
        items = [
            InputItem(p, kind_of(p)) for p in sorted(glob.glob(os.path.expanduser(text), recursive=True))
        ]
        items = [i for i in items if not Path(i.path).is_dir()]
    else:
        raise InputError(f"input={text}: no such file or folder")
    if not items:
        raise InputError(f"input={text}: no files found")
    return items
