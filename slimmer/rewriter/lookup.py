"""Command lookup inside an image's merged filesystem, as execvp would do it in a container:
``PATH`` search for a command name, relative names from the working directory. Symlinks are
resolved by ``slimmer.layers.resolve`` (re-exported here with ``Found``).

Paths here are model paths (no leading ``/``); ``""`` is the root. Imports only the model and
``slimmer.layers``.
"""

from __future__ import annotations

import posixpath

from slimmer.layers import Found, MergedFS, resolve
from slimmer.model import normalize_path

__all__ = ["DEFAULT_PATH", "Found", "find_command", "model_path", "resolve", "search_path"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def model_path(path: str, cwd: str = "") -> str:
    """Return ``path`` (absolute, or relative to the model path ``cwd``) as a model path, with
    ``.`` and ``..`` folded lexically and clamped at the root."""
    return normalize_path(path if path.startswith("/") else f"{cwd}/{path}")


def search_path(env_path: str) -> list[str]:
    """Return the directories of a ``PATH`` value (empty entries mean the working directory,
    as in execvp; they are given as ".")."""
    return [d or "." for d in env_path.split(":")]


def find_command(fs: MergedFS, name: str, env: dict[str, str], cwd: str = "") -> tuple[str, Found] | None:
    """Return (the path as called, where it leads) for command ``name`` as execvp finds it:
    a name with ``/`` is a path (relative to ``cwd``); a bare name is searched in ``PATH``
    for an executable file. None if nothing is found."""
    if "/" in name:
        found = resolve(fs, name, cwd)
        return (model_path(name, cwd), found) if found and found.is_file else None
    for d in search_path(env.get("PATH", DEFAULT_PATH)):
        called = model_path(posixpath.join(d, name), cwd)
        found = resolve(fs, called)
        if found and found.version is not None and found.is_file and found.version.entry.mode & 0o111:
            return called, found
    return None
