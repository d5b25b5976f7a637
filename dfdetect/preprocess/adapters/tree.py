"""Datasets laid out as ``real/`` and ``fake/`` folders (VoxCelebTH, CelebFOM, CelebBlend, FCelebDF,
and the generic ``folder`` adapter), with identities taken from folder or file names.

``<raw>/{real,fake}/<identity>/**/<file>``: the first folder below ``real/``/``fake/`` names the
identity (``identity_from=folder``); files lying directly in ``real/``/``fake/`` are named after
their file stem. ``identity_from=auto`` (the generic ``folder`` adapter's default) does the same
for files in such a folder, and makes a file lying directly in ``real/``/``fake/`` its own identity
(its path), so ``real/alice/x.mp4`` and ``fake/alice/y.mp4`` share a split group while flat files
each form their own; ``none`` makes every file its own identity, ``name`` uses the file stem. With ``source_from_name``, a fake's file stem names the other person involved
(the blended-in celebrity, the driving identity) and becomes its ``source_identity``. With
``suffix_labels``, a stem ending in ``_real``/``_fake`` gives the label, so flat folders work.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from dfdetect.preprocess.adapters.base import (
    REAL_METHOD,
    AdapterError,
    SourceItem,
    finish,
    make_item,
    require_dir,
    walk_media,
)

log = logging.getLogger(__name__)

LABEL_DIRS = {"real": 0, "fake": 1}
_SUFFIX = re.compile(r"^(.*?)[ _-]+(real|fake)$", re.IGNORECASE)
IDENTITY_SOURCES = ("auto", "folder", "name", "none")


def _label_and_name(rel: Path, suffix_labels: bool) -> tuple[int | None, str, list[str]]:
    """(label or None, file name without a label suffix, folders below the label folder)."""
    folders = list(rel.parts[:-1])
    name = rel.stem
    label = None
    if suffix_labels and (m := _SUFFIX.match(name)):
        name, label = m.group(1), LABEL_DIRS[m.group(2).lower()]
    if folders and folders[0].lower() in LABEL_DIRS:
        folder_label = LABEL_DIRS[folders.pop(0).lower()]
        label = folder_label if label is None else label
    return label, name, folders


def scan_labelled_tree(
    raw_dir: str,
    dataset: str,
    fake_method: str = "fake",
    identity_from: str = "folder",
    source_from_name: bool = False,
    suffix_labels: bool = False,
    default_label: int | None = None,
    top_level_identity: bool = False,
) -> list[SourceItem]:
    """``top_level_identity``: the first folder of the path (above any real/fake folder) names the
    identity, as in CelebFOM's ``<identity>/<video>/<driver>_fake.png``."""
    if identity_from not in IDENTITY_SOURCES:
        raise AdapterError(
            f"{dataset}: identity_from must be one of {IDENTITY_SOURCES}, got {identity_from!r}"
        )
    root = require_dir(raw_dir, dataset)
    items, unlabelled = [], []
    for path in walk_media(root):
        rel = path.relative_to(root)
        top = None
        if top_level_identity and len(rel.parts) > 1 and rel.parts[0].lower() not in LABEL_DIRS:
            top, rel = rel.parts[0], Path(*rel.parts[1:])
        label, name, folders = _label_and_name(rel, suffix_labels)
        label = default_label if label is None else label
        if label is None:
            unlabelled.append(path)
            continue
        by_folder = identity_from in ("folder", "auto")
        nested = top is not None or (by_folder and bool(folders))
        if identity_from == "none" or (identity_from == "auto" and not nested):
            identity = path.relative_to(root).with_suffix("").as_posix()
        elif top is not None:
            identity = top
        elif by_folder and folders:
            identity = folders[0]
        else:
            identity = name
        source = name if (label == 1 and source_from_name and nested) else identity
        items.append(
            make_item(
                root,
                path,
                dataset=dataset,
                method=fake_method if label == 1 else REAL_METHOD,
                label=int(label),
                identity=identity,
                source_identity=source,
            )
        )
    if unlabelled:
        log.warning(
            "%s: %d file(s) outside real/ and fake/ left out, e.g. %s (set default_label to include them)",
            dataset,
            len(unlabelled),
            unlabelled[0],
        )
    return finish(items, dataset)
