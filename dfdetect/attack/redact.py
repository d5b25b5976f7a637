"""Keeps credential values out of log output: while active, every log record whose message or
arguments contain one has it replaced by ``***`` (defence in depth: nothing here logs a key)."""

from __future__ import annotations

import logging

MASK = "***"


class _Filter(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class SecretScrubber:
    """Context manager: the filter sits on every handler of the root logger."""

    def __init__(self, secrets: list[str]):
        self.filter = _Filter(list(secrets))
        self.handlers: list[logging.Handler] = []

    def __enter__(self):
        self.handlers = list(logging.getLogger().handlers)
        for handler in self.handlers:
            handler.addFilter(self.filter)
        return self

    def __exit__(self, *exc):
        for handler in self.handlers:
            handler.removeFilter(self.filter)
