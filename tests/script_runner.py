"""Run entry scripts one after another in this one process (``python -m tests.script_runner``
from the repository root), as ``python <script> <args>`` would run each: the script file itself
runs as ``__main__``, with its own argv handling, ``@hydra.main`` or argparse. Reads
``[[script, [arg, ...]], ...]`` as JSON on stdin; writes one ``{"code": exit status, "stdout":
..., "stderr": ...}`` per command as JSON on stdout. For quick commands (``--cfg job``,
``--help``) that would otherwise spend most of their time starting an interpreter and importing."""

from __future__ import annotations

import contextlib
import io
import json
import runpy
import sys

from hydra.core.global_hydra import GlobalHydra


def run_script(script: str, args: list[str]) -> dict:
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [script, *args]
    GlobalHydra.instance().clear()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        except Exception as exc:  # noqa: BLE001 - reported to the test as a failed command
            code = 1
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    return {"code": code, "stdout": out.getvalue()[-8000:], "stderr": err.getvalue()[-4000:]}


def main() -> None:
    commands = json.load(sys.stdin)
    results = [run_script(script, args) for script, args in commands]
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    main()
