"""Keeps credential values out of everything a run writes: log records (``SecretScrubber``), the
raw responses and error codes stored in the cache, and the messages and summary of a run
(``Redactor``). The secrets are the values the provider's client holds, the values of its
credential variables, and the value of every environment variable whose name looks like a
credential (``KEY``, ``SECRET``, ``TOKEN``, ``PASSWORD`` …): a provider that echoes a key in an
error body (``invalid subscription key <key>``) must not get it into the cache."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping

MASK = "***"
# names of environment variables whose values are treated as secrets
SECRET_NAME = re.compile(
    r"KEY|SECRET|TOKEN|PASSW|CREDENTIAL|SUBSCRIPTION|AUTH(?!OR)|SIGNATURE", re.IGNORECASE
)
# shorter values of such variables ("1", "true") are settings, not secrets
MIN_ENV_SECRET = 8
MIN_SECRET = 4


def env_secrets(names: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of the variables ``names`` (the provider's credential variables) and of every
    environment variable whose name looks like a credential."""
    environ = os.environ if environ is None else environ
    values = [environ.get(str(n), "") for n in names]
    values += [v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_ENV_SECRET]
    return [v for v in values if v]


class Redactor:
    """Replaces every secret (longest first) by ``***`` in text, and in the keys and values of
    decoded JSON (dicts, lists, strings) without changing its shape."""

    def __init__(self, secrets: Iterable[str]):
        unique = {str(s) for s in secrets if s and len(str(s)) >= MIN_SECRET}
        self.secrets = sorted(unique, key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __call__(self, value):
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self(v) for v in value)
        return value


class _Filter(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self.redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact.text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class SecretScrubber:
    """Context manager: the filter sits on every handler of the root logger."""

    def __init__(self, secrets: Iterable[str]):
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
