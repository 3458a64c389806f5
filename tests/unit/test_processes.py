"""Ending a daemon by PID only while it is the process the caller checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from onestack.common.processes import cmdline, end_process, read_pidfile


def test_end_process_only_hits_the_checked_command_line() -> None:
    argv = [sys.executable, "-c", "import time; print(flush=True); time.sleep(60)"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # it runs
        assert cmdline(proc.pid) == argv
        # Someone else's now (a reused PID, as far as the caller can tell): untouched.
        assert end_process(proc.pid, ["dnsmasq", "--pid-file=/x/pid"], timeout=0.2)
        assert proc.poll() is None
        assert end_process(proc.pid, argv, timeout=5)
        assert proc.wait(5) == -15  # SIGTERM was enough
        assert cmdline(proc.pid) == []
        assert end_process(proc.pid, argv)  # gone: nothing to do
    finally:
        proc.kill()
        proc.wait()


def test_end_process_kills_what_ignores_sigterm() -> None:
    argv = [sys.executable, "-c", "import signal, sys, time; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); "
            "time.sleep(60)"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # the handler is in place
        assert end_process(proc.pid, argv, timeout=0.3)
        assert proc.wait(5) == -9
    finally:
        proc.kill()
        proc.wait()


def test_read_pidfile(tmp_path: Path) -> None:
    path = tmp_path / "pid"
    assert read_pidfile(path) is None
    for text, pid in (("123\n", 123), ("0", None), ("-5", None), ("x", None), ("", None)):
        path.write_text(text)
        assert read_pidfile(path) == pid
