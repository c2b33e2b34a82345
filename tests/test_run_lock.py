"""One writer per run folder: the lock between two real processes, and after a kill."""

import logging
import os
import signal
import subprocess
import sys

import pytest

from gaussianip.run_lock import LOCK_FILE, RunFolderBusy, RunLock

HOLDER = """
import sys, time
from gaussianip.run_lock import RunLock
lock = RunLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


def _holder(folder):
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(RunFolderBusy, match=f"in use by process {holder.pid} on "):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holders_lock_is_taken_over_with_a_note(tmp_path, caplog):
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / LOCK_FILE).read_text()  # left behind by the killed process
    with caplog.at_level(logging.WARNING, logger="gaussianip.run_lock"):
        with RunLock(tmp_path):
            assert f'"pid": {os.getpid()}' in (tmp_path / LOCK_FILE).read_text()
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and f"left by process {holder.pid}" in notes[0]
    assert not (tmp_path / LOCK_FILE).exists()  # released cleanly: nothing left


def test_released_lock_is_free_for_the_next_writer(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="gaussianip.run_lock"):
        with RunLock(tmp_path):
            with pytest.raises(RunFolderBusy):  # a second holder, even in one process
                RunLock(tmp_path).acquire()
        with RunLock(tmp_path):
            pass
    assert caplog.records == []  # clean hand-overs: no stale-lock note
    holder = _holder(tmp_path)  # and another process gets it ("held")
    holder.kill()
    holder.wait()
