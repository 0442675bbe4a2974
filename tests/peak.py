"""Run slimmer in a child process and measure *its* peak memory.

``os.wait4`` on a child started by subprocess reports at least the parent's own peak: the
child is started with vfork and Linux carries the old address space's high-water mark across
exec. A small launcher process forks the real child instead, so the figure is the child's.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_LAUNCHER = r"""
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


@dataclass
class Measured:
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float
    peak_mb: float


def run_slimmer(*args, report: Path, stdin_path: Path | None = None) -> Measured:
    """Run ``python -m slimmer ARGS``; ``report`` is a scratch file for the launcher. With
    ``stdin_path``, that file is fed to the child's standard input through a pipe."""
    start = time.monotonic()
    cmd = [sys.executable, "-c", _LAUNCHER, str(report), sys.executable, "-m", "slimmer", *map(str, args)]
    if stdin_path is None:
        done = subprocess.run(cmd, capture_output=True, check=False)
        out, err, code = done.stdout, done.stderr, done.returncode
    else:
        with open(stdin_path, "rb") as src:
            feeder = subprocess.Popen(["cat"], stdin=src, stdout=subprocess.PIPE)
            done = subprocess.run(cmd, stdin=feeder.stdout, capture_output=True, check=False)
            feeder.stdout.close()
            feeder.wait()
        out, err, code = done.stdout, done.stderr, done.returncode
    seconds = time.monotonic() - start
    return Measured(code, out, err, seconds, int(report.read_text()) / 1024)
