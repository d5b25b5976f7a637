"""Readers of published weight files (never downloaded: the user passes a local path)."""
