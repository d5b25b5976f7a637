"""Face chips with identity labels (dlib's 150x150 chips from MTCNN landmarks) and their
per-identity train/test splits."""
