"""Command lookup inside an image's merged filesystem, as execvp would do it in a container:
``PATH`` search for a command name, relative names from the working directory. Symlinks are
resolved by ``slimmer.layers.resolve`` (re-exported here with ``Found``).

Paths here are model paths (no leading ``/``); ``""`` is the root. Imports only the model and
``slimmer.layers``.
"""

from __future__ import annotations

from slimmer.layers import Found, MergedFS, resolve
from slimmer.model import normalize_path

__all__ = ["DEFAULT_PATH", "CommandFinder", "Found", "find_command", "model_path", "resolve", "search_path"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def model_path(path: str, cwd: str = "") -> str:
    """Return ``path`` (absolute, or relative to the model path ``cwd``) as a model path, with
    ``.`` and ``..`` folded lexically and clamped at the root."""
    return normalize_path(path if path.startswith("/") else f"{cwd}/{path}")


def search_path(env_path: str) -> list[str]:
    """Return the directories of a ``PATH`` value (empty entries mean the working directory,
    as in execvp; they are given as ".")."""
    return [d or "." for d in env_path.split(":")]


class CommandFinder:
    """Finds commands as execvp does, for one image, environment and working directory. The
    ``PATH`` directories are resolved once, and each name is looked up once: a PATH of 20,000
    entries and a script running 2,000 commands cost 20,000 resolutions, not 40 million."""

    def __init__(self, fs: MergedFS, env: dict[str, str], cwd: str = ""):
        self.fs, self.cwd = fs, cwd
        self._dirs: list[tuple[str, str]] = []  # (the PATH entry as a model path, where it really is)
        seen: set[str] = set()
        for d in search_path(env.get("PATH", DEFAULT_PATH)):
            called = model_path(d, cwd)
            if called in seen:
                continue
            seen.add(called)
            found = resolve(fs, "/" + called) if called else Found("", None)
            if found is not None and found.is_dir:
                self._dirs.append((called, found.path))
        self._found: dict[str, tuple[str, Found] | None] = {}

    def find(self, name: str) -> tuple[str, Found] | None:
        """Return (the path as called, where it leads) for command ``name``: a name with ``/``
        is a path (relative to the working directory); a bare name is searched in ``PATH``
        for an executable file. None if nothing is found."""
        if name in self._found:
            return self._found[name]
        hit = self._find(name)
        self._found[name] = hit
        return hit

    def _find(self, name: str) -> tuple[str, Found] | None:
        fs = self.fs
        if "/" in name:
            found = resolve(fs, name, self.cwd)
            return (model_path(name, self.cwd), found) if found and found.is_file else None
        for called_dir, real_dir in self._dirs:
            if not fs.exists(f"{real_dir}/{name}" if real_dir else name):
                continue
            called = f"{called_dir}/{name}" if called_dir else name
            found = resolve(fs, "/" + called)
            if found and found.version is not None and found.is_file and found.version.entry.mode & 0o111:
                return called, found
        return None


def find_command(fs: MergedFS, name: str, env: dict[str, str], cwd: str = "") -> tuple[str, Found] | None:
    """Return (the path as called, where it leads) for command ``name`` as execvp finds it
    (``CommandFinder``, for one lookup)."""
    return CommandFinder(fs, env, cwd).find(name)
