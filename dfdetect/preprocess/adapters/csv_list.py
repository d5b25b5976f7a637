"""A CSV list of source files: ``path,label[,identity,group,method,source_identity,split]``.

``path`` is relative to the CSV's folder (or absolute); ``label`` is 0/1 or real/fake. Rows
sharing a ``group`` or an ``identity`` share a split group; rows with neither are groups of one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from dfdetect.data.manifest import SPLITS
from dfdetect.preprocess.adapters.base import REAL_METHOD, AdapterError, SourceItem, finish
from dfdetect.preprocess.media import media_kind

_LABELS = {"0": 0, "1": 1, "real": 0, "fake": 1, "false": 0, "true": 1}


def _cell(row: pd.Series, column: str) -> str:
    value = row.get(column, "")
    return "" if pd.isna(value) else str(value).strip()


def _key(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        digest = hashlib.sha1(str(path.parent).encode()).hexdigest()[:8]
        return f"external/{digest}/{path.name}"


def scan_csv(csv_path: str, dataset: str = "folder", fake_method: str = "fake") -> list[SourceItem]:
    csv_path = Path(csv_path).expanduser().resolve()
    if not csv_path.is_file():
        raise AdapterError(f"{dataset}: list {csv_path} does not exist")
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise AdapterError(
            f"{csv_path}: missing column(s) {sorted(missing)}; expected path,label[,identity,group]"
        )
    base = csv_path.parent
    items = []
    for n, row in table.iterrows():
        where = f"{csv_path}:{n + 2}"
        label = _LABELS.get(_cell(row, "label").lower())
        if label is None:
            raise AdapterError(f"{where}: label must be 0/1 or real/fake, got {_cell(row, 'label')!r}")
        path = Path(_cell(row, "path")).expanduser()
        path = path if path.is_absolute() else base / path
        kind = media_kind(path)
        if kind is None:
            raise AdapterError(f"{where}: {path} is not a video or image file name")
        split = _cell(row, "split")
        if split not in ("", *SPLITS):
            raise AdapterError(f"{where}: split must be one of {SPLITS} or empty, got {split!r}")
        key = _key(path, base)
        video_id = key.rsplit(".", 1)[0]
        identity = _cell(row, "identity")
        group = _cell(row, "group")
        keys = tuple(
            k for k in (f"group:{group}" if group else "", f"id:{identity}" if identity else "") if k
        )
        items.append(
            SourceItem(
                path=str(path),
                key=key,
                video_id=video_id,
                kind=kind,
                dataset=dataset,
                method=_cell(row, "method") or (fake_method if label else REAL_METHOD),
                label=label,
                identity=identity or video_id,
                source_identity=_cell(row, "source_identity") or identity or video_id,
                group_keys=keys or (f"file:{key}",),
                split=split,
            )
        )
    return finish(items, dataset)
