"""Clip stores and the datamodule over them. The datamodule (and with it Lightning) is imported
only when asked for, so that data tools start fast."""

from dfdetect.data.manifest import MANIFEST_COLUMNS, read_manifest, write_manifest

__all__ = ["ClipDataModule", "MANIFEST_COLUMNS", "read_manifest", "write_manifest"]


def __getattr__(name: str):
    if name == "ClipDataModule":
        from dfdetect.data.datamodule import ClipDataModule

        return ClipDataModule
    raise AttributeError(f"module 'dfdetect.data' has no attribute {name!r}")
