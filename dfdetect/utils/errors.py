"""Errors a user can mend from the message alone, and how entry points report them."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class UserError(Exception):
    """Bad input, an unusable file or a wrong setting: reported as one line, without a traceback
    (``HYDRA_FULL_ERROR=1`` shows the traceback)."""


@contextmanager
def one_line_errors(task: str) -> Iterator[None]:
    """Turn a ``UserError`` into ``<task>: error: <message>`` on stderr and exit status 1."""
    try:
        yield
    except Exception as e:
        cause = user_error_in(e)
        if cause is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{task}: error: {cause}", file=sys.stderr, flush=True)
        sys.exit(1)


def user_error_in(error: BaseException) -> UserError | None:
    """The ``UserError`` behind ``error``: itself, or what a wrapper (e.g. Hydra's
    ``InstantiationException``) was raised from."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
