"""Reading the manifest of a LitData export from a local folder or an object-store URI."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from dfdetect.data.litdata_dataset import join_uri
from dfdetect.data.manifest import MANIFEST_NAME, StoreNotFoundError, read_manifest


def read_export_manifest(uri: str | os.PathLike, storage_options: Mapping | None = None) -> pd.DataFrame:
    """The exported manifest (splits preset). Remote URIs (``s3://``, ``gs://``, ...) are fetched with
    LitData's downloaders, which take credentials from the environment."""
    uri = str(uri)
    if "://" not in uri:
        try:
            df = read_manifest(uri)
        except StoreNotFoundError:
            raise StoreNotFoundError(
                f"no LitData export at {uri} (no {MANIFEST_NAME}): export a clip store first: "
                f"python scripts/export_litdata.py --store <store> --out {uri}"
            ) from None
    else:
        from litdata.streaming.downloader import get_downloader

        with tempfile.TemporaryDirectory(prefix="dfdetect-litdata-") as tmp:
            downloader = get_downloader(uri, tmp, [], dict(storage_options or {}))
            try:
                downloader.download_file(join_uri(uri, MANIFEST_NAME), str(Path(tmp) / MANIFEST_NAME))
            except Exception as err:
                raise StoreNotFoundError(f"cannot fetch {join_uri(uri, MANIFEST_NAME)}: {err}") from err
            df = read_manifest(tmp)
    if "litdata_index" not in df.columns:
        raise ValueError(f"{uri} is not a dfdetect LitData export (its manifest has no litdata_index)")
    return df
