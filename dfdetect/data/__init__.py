from dfdetect.data.datamodule import ClipDataModule
from dfdetect.data.manifest import MANIFEST_COLUMNS, read_manifest, write_manifest

__all__ = ["ClipDataModule", "MANIFEST_COLUMNS", "read_manifest", "write_manifest"]
