"""The gate's life as one process tree: SIGTERM/SIGINT drain the admitted requests (bounded), close
the audit log and take every child down (LitServe's manager, which inherits the listening socket,
and the inference workers) before the process exits; a watchdog makes a worker death visible on
``/health`` while LitServe restarts it, and exits non-zero when the restart does not come (so a
supervisor such as systemd's ``Restart=on-failure`` can act) instead of leaving a stuck server."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first, then theirs), read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(0), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _kill_round(grace_s: float) -> list[int]:
    pids = [p for p in descendants(os.getpid()) if _alive(p) and "resource_tracker" not in _cmdline(p)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    for pid in pids:  # reap our own children so none is left a zombie
        try:
            os.waitpid(pid, os.WNOHANG)
        except OSError:
            pass
    return pids


def kill_tree(grace_s: float = 5.0, rounds: int = 3) -> None:
    """SIGTERM to every descendant of this process, SIGKILL to those still there after ``grace_s``;
    again for any that started meanwhile. Python's multiprocessing resource tracker is left to end
    by itself: it ignores SIGTERM, and exits (cleaning up what it tracks) once its writers are gone."""
    for _ in range(rounds):
        if not _kill_round(grace_s):
            return


class Lifecycle:
    """Owns the shutdown of a running gate: ``install()`` before ``LitServer.run``."""

    def __init__(self, server, gate, drain_s: float, restart_wait_s: float = 120.0):
        self.server, self.gate = server, gate
        self.drain_s, self.restart_wait_s = float(drain_s), float(restart_wait_s)
        self.stopping = threading.Lock()

    # ------------------------------------------------------------------ health
    def workers_alive(self) -> bool:
        workers = list(getattr(self.server, "inference_workers", None) or [])
        return bool(workers) and all(w.is_alive() for w in workers)

    def healthy(self) -> tuple[bool, str]:
        if self.gate.draining:
            return False, "shutting down"
        if not self.workers_alive():
            return False, "an inference worker is down (restarting)"
        status = getattr(self.server, "workers_setup_status", None)
        try:
            ready = bool(status) and all(str(v).lower().endswith("ready") for v in status.values())
        except Exception:  # the manager holding the status is gone
            return False, "the worker manager is gone"
        return (True, "ok") if ready else (False, "inference workers starting")

    # ------------------------------------------------------------------ signals
    def install(self) -> None:
        # LitServe's monitor restarts a dead worker; once stopping, it must not restart the workers
        # being stopped (its shutdown event cannot be used: the main thread waits on it, and a
        # signal handler calling the same manager connection would deadlock)
        launch = self.server.launch_single_inference_worker

        def restart(lit_api, worker_id):
            if self.gate.draining:
                return self.server.inference_workers[worker_id]  # stays dead; stop() ends the rest
            return launch(lit_api, worker_id)

        self.server.launch_single_inference_worker = restart
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        threading.Thread(target=self._watch, daemon=True, name="gate-watchdog").start()

    def _on_signal(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        self.stop(0, f"{name}: draining {self.gate.in_flight} request(s) (at most {self.drain_s:g} s)")

    def stop(self, code: int, why: str) -> None:
        """Drain, flush, take every child down and exit with ``code``; never returns."""
        if not self.stopping.acquire(blocking=False):
            return  # a second signal while stopping: the first stop goes on
        print(f"serve: {why}", file=sys.stderr, flush=True)
        self.gate.draining = True
        deadline = time.monotonic() + self.drain_s
        while self.gate.in_flight > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        left = self.gate.in_flight
        time.sleep(0.5)  # the answers of the last requests leave the socket
        t0 = time.monotonic()
        kill_tree()
        try:
            self.gate.close()  # the audit log last: the 503s of the drain are in it too
        except Exception as e:  # the exit must happen whatever the close says
            print(f"serve: closing: {e}", file=sys.stderr, flush=True)
        print(
            f"serve: stopped ({left} request(s) cut at the drain deadline, children down in "
            f"{time.monotonic() - t0:.1f} s); exit {code}",
            file=sys.stderr,
            flush=True,
        )
        logging.shutdown()
        os._exit(code)

    # ------------------------------------------------------------------ watchdog
    def _watch(self) -> None:
        down_since = None
        manager = getattr(getattr(self.server, "transport_config", None), "manager", None)
        while True:
            time.sleep(0.5)
            if self.gate.draining:
                return
            process = getattr(manager, "_process", None)
            if process is not None and not process.is_alive():
                threading.Thread(
                    target=self.stop, args=(1, "error: LitServe's worker manager died"), daemon=True
                ).start()
                return
            if self.workers_alive():
                down_since = None
                continue
            if getattr(self.server, "inference_workers", None) is None:
                continue  # not started yet
            down_since = down_since or time.monotonic()
            if time.monotonic() - down_since > self.restart_wait_s:
                why = (
                    f"error: an inference worker died and was not restarted within {self.restart_wait_s:g} s"
                )
                threading.Thread(target=self.stop, args=(1, why), daemon=True).start()
                return
