"""Preprocessing (paper appendix A.5): videos and stills -> MTCNN-aligned 240x240 face clips in a
resumable clip store (store.py describes its layout), with one adapter per dataset layout.

media (decoding) -> sampling (clip starts) -> mtcnn_detector / mtcnn_cascade (faces; faces.py is
the light interface) -> track (one face per clip) -> align (crop warp) -> pipeline (one file) ->
store (atomic per-file commits) -> tables (manifest, status) -> runner (workers, progress,
summary); adapters/ (dataset layouts). dfdetect.run.preprocess runs it from the Hydra config.
"""
