"""The deepfake gate as a service (paper §6–7): LitServe runs one predictor (``dfdetect.predict``)
per request with dynamic batching; ``/v1/recognize`` forwards to a celebrity-recognition API only
what the gate passes as real. ``server.py`` builds the app; see docs/serving.md."""
