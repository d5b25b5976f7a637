"""Detectors in three parts, imports pointing down: ``lightning/`` (training modules, metrics,
checkpoints) over ``nets/`` (one file per detector family, each registering itself) over
``layers/`` (shared building blocks) and ``weights/`` (readers of published weight files)."""
