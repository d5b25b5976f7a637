"""What an adapter returns: one ``SourceItem`` per source video or still, with its labels; and
the helpers adapters share (walking a tree of media files, linking items into split groups)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from dfdetect.data.splits import link_groups
from dfdetect.preprocess.media import media_kind
from dfdetect.preprocess.store import folder_name

log = logging.getLogger(__name__)

REAL_METHOD = "real"


class AdapterError(ValueError):
    """The raw data does not look like the layout the adapter expects."""


@dataclass(frozen=True)
class SourceItem:
    path: str  # absolute path of the source file
    key: str  # unique, relative: names its crop folder and record in the store (extension kept)
    video_id: str  # manifest video_id: the key without its extension
    kind: str  # "video" or "image"
    dataset: str
    method: str  # REAL_METHOD for pristine media
    label: int  # 1 = fake
    identity: str  # whose face is shown (for a fake: the identity it impersonates)
    source_identity: str  # the person of the video the face was put into (= identity for reals)
    # items sharing any of these keys share a split group (default: identity and source_identity)
    group_keys: tuple[str, ...] = ()
    split: str = ""  # preset split (e.g. an official test list), else empty
    group: str = ""  # filled by assign_groups

    @property
    def stem(self) -> str:
        return Path(self.key).stem


def make_item(root: Path, path: Path, **fields) -> SourceItem:
    key = path.relative_to(root).as_posix()
    kind = media_kind(path)
    if kind is None:
        raise AdapterError(f"{path}: not a video or image file")
    return SourceItem(path=str(path), key=key, video_id=key.rsplit(".", 1)[0], kind=kind, **fields)


def walk_media(root: Path) -> Iterator[Path]:
    """Video and image files under ``root``, sorted, skipping hidden files and folders."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and media_kind(name) is not None:
                yield Path(dirpath) / name


def find_dir(root: Path, *names: str) -> Path | None:
    """The first child of ``root`` whose name matches one of ``names`` case-insensitively."""
    if not root.is_dir():
        return None
    wanted = [n.lower() for n in names]
    children = {c.name.lower(): c for c in sorted(root.iterdir()) if c.is_dir()}
    for name in wanted:
        if name in children:
            return children[name]
    return None


def require_dir(path: str | os.PathLike, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise AdapterError(f"{what}: raw data folder {path} does not exist")
    return path.resolve()


def dedupe_video_ids(items: Sequence[SourceItem]) -> list[SourceItem]:
    """Files differing only in extension (``a.mp4``, ``a.avi``) keep their extension in video_id."""
    counts = pd.Series([it.video_id for it in items]).value_counts()
    return [replace(it, video_id=it.key) if counts[it.video_id] > 1 else it for it in items]


def assign_groups(items: Sequence[SourceItem]) -> list[SourceItem]:
    """Connected components over shared group keys; each group is named after its smallest key."""
    if not items:
        return []
    keys = [it.group_keys or (f"id:{it.identity}", f"id:{it.source_identity}") for it in items]
    exploded = pd.DataFrame(
        [(str(i), k) for i, ks in enumerate(keys) for k in ks], columns=["group", "identity"]
    )
    exploded["source_identity"] = ""
    component = link_groups(exploded, columns=("group", "identity"))
    names = exploded.groupby(component)["identity"].min()
    row_group = dict(zip(exploded["group"].astype(int), component.map(names), strict=True))
    return [replace(it, group=row_group[i]) for i, it in enumerate(items)]


def finish(items: Sequence[SourceItem], what: str) -> list[SourceItem]:
    if not items:
        raise AdapterError(f"{what}: no video or image files found in the expected layout")
    keys = pd.Series([it.key for it in items])
    if keys.duplicated().any():
        raise AdapterError(f"{what}: {keys[keys.duplicated()].iloc[0]!r} is listed more than once")
    folders = {folder_name(k) for k in keys}
    parents = {p.as_posix() for k in keys for p in Path(k).parents}
    if folders & parents:
        raise AdapterError(
            f"{what}: a file's crop folder would be the folder {sorted(folders & parents)[0]!r}; rename it"
        )
    items = dedupe_video_ids(sorted(items, key=lambda it: it.key))
    log.info("%s: %d source files (%d fake)", what, len(items), sum(it.label for it in items))
    return assign_groups(items)
