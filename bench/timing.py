"""Timing a benchmark command: wall time and peak RSS from GNU time (``/usr/bin/time``), the
one way every script in bench/ measures a run."""

from __future__ import annotations

import subprocess
import tempfile


def timed(cmd: str, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Run ``cmd`` in bash; return (wall seconds, peak RSS in KiB). A failing command ends the
    benchmark, with the end of what it wrote to stderr."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        proc = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", tf.name, "bash", "-c", cmd], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"benchmark command failed ({proc.returncode}): {cmd}\n{proc.stderr[-2000:]}")
        wall, rss = tf.read().split()[-2:]
    return float(wall), int(rss)
