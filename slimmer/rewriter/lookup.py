"""Path lookup inside an image's merged filesystem, as the kernel would do it in a container:
symlink chains (absolute targets start again at the image root, never the host's), ``..``
clamped at the root, ``PATH`` search for a command name.

Paths here are model paths (no leading ``/``); ``""`` is the root. Imports only the model and
``slimmer.layers``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from slimmer.layers import MergedFS, Version
from slimmer.model import DIR, FILE, HARDLINK, SYMLINK

MAX_LINKS = 40  # Linux MAXSYMLINKS
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Found:
    """A path that resolved: the real path, its final version (None for a directory only
    implied by deeper entries) and every symlink passed on the way, in order."""

    path: str
    version: Version | None
    links: tuple[str, ...] = ()

    @property
    def is_dir(self) -> bool:
        """Whether the path is a directory (listed, or implied by deeper entries)."""
        return self.version is None or self.version.entry.kind == DIR

    @property
    def is_file(self) -> bool:
        """Whether the path holds bytes: a regular file or a hard link to one."""
        return self.version is not None and self.version.entry.kind in (FILE, HARDLINK)


def model_path(path: str, cwd: str = "") -> str:
    """Return ``path`` (absolute, or relative to the model path ``cwd``) as a model path, with
    ``.`` and ``..`` folded lexically and clamped at the root."""
    full = path if path.startswith("/") else "/" + cwd.strip("/") + "/" + path
    return posixpath.normpath(full).lstrip("/")


def resolve(fs: MergedFS, path: str, cwd: str = "", follow_last: bool = True) -> Found | None:
    """Return where ``path`` leads in ``fs`` following symlinks (the last one only if
    ``follow_last``), or None if it leads nowhere or loops."""
    pending = _parts(path if path.startswith("/") else "/" + cwd.strip("/") + "/" + path)
    done: list[str] = []
    links: list[str] = []
    version: Version | None = None
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            version = None
            continue
        here = "/".join(done + [part])
        if not fs.exists(here):
            return None
        version = fs.get(here)
        if version is not None and version.entry.kind == SYMLINK and (pending or follow_last):
            if len(links) >= MAX_LINKS:
                return None
            links.append(here)
            target = version.entry.link
            if target.startswith("/"):
                done = []
            pending = _parts(target) + pending
            version = None
            continue
        if pending and version is not None and version.entry.kind != DIR:
            return None  # a file used as a directory
        done.append(part)
    real = "/".join(done)
    return Found(real, fs.get(real) if real else None, tuple(links))


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


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
        if found and found.is_file and found.version.entry.mode & 0o111:
            return called, found
    return None
