"""Running an image's program in a sandbox, offline, for ``slim --probe`` and ``--verify``.

The image's merged root filesystem is exported (``slimmer.exporter``) into a temporary
directory; the program runs there with ``unshare`` (util-linux) in new user, mount, PID and
network namespaces (so no network, and nothing it does reaches the host's mounts or
processes), ``/proc`` mounted and the host's ``/dev`` bound in, chrooted into that directory
(``unshare --root``), in the image's WorkingDir with exactly the image's Env, as root of the
user namespace, for at most ``timeout`` seconds. ``strace -f`` (Debian's strace) records every
path it opens, executes, stats or lists; events before the chroot are the sandbox's own and
are dropped.

``check_host`` says why a host cannot run an image (another architecture, no namespaces, no
strace); ``run`` returns what one run printed and touched. Imports the model, ``slimmer.layers``
and the exporter; never the reader.
"""

from __future__ import annotations

import os
import platform
import posixpath
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from slimmer.errors import SlimmerError
from slimmer.exporter import ExportOptions, export_dir
from slimmer.model import Image, command_line, runtime_config

TIMEOUT = 60.0
MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
            "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
# One strace line: "PID call(args) = result". Only the first path argument matters.
_EVENT = re.compile(r'^(?P<pid>\d+)\s+(?P<call>\w+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\d+|\?)(?:\s+(?P<err>E\w+))?')
_PATH_ARG = re.compile(r'(?:(?P<dirfd>AT_FDCWD|\d+)<(?P<dir>[^>]*)>,\s*)?"(?P<path>(?:[^"\\]|\\.)*)"')
_CALLS = frozenset({"open", "openat", "openat2", "execve", "execveat", "stat", "lstat", "newfstatat", "statx",
                    "access", "faccessat", "faccessat2", "readlink", "readlinkat", "chdir", "opendir"})


class SandboxError(SlimmerError):
    """Raised when this host cannot run an image's program in the sandbox (another
    architecture, user namespaces or ``unshare`` unavailable, no ``strace``)."""


@dataclass(frozen=True)
class Opened:
    """One path a run asked the kernel about, in the image's terms (absolute), and whether it
    was there."""

    path: str
    found: bool
    call: str
    missing: bool = False  # the kernel said it is not there (ENOENT, ENOTDIR)


@dataclass
class Run:
    """What one sandboxed run did: its exit status (None on a timeout), what it printed, and
    the paths it touched in order."""

    argv: tuple[str, ...]
    status: int | None
    stdout: bytes
    stderr: bytes
    opened: list[Opened] = field(default_factory=list)
    timed_out: bool = False

    def found_paths(self) -> list[str]:
        """Return the paths the run found, once each, in order."""
        return list(dict.fromkeys(o.path for o in self.opened if o.found))


def host_arch() -> str:
    return MACHINES.get(platform.machine(), platform.machine())


def check_host(image: Image, need_strace: bool = True) -> None:
    """Raise SandboxError, saying why in one line, if this host cannot run ``image``'s
    programs in the sandbox."""
    arch = str(image.config.get("architecture") or "")
    os_name = str(image.config.get("os") or "linux")
    if os_name != "linux" or (arch and MACHINES.get(arch, arch) != host_arch()):
        raise SandboxError(f"cannot run the image here: it is for {os_name}/{arch or '?'}, this host is "
                           f"linux/{host_arch()}")
    if not shutil.which("unshare"):
        raise SandboxError("cannot run the image here: unshare (util-linux) is not installed")
    if need_strace and not shutil.which("strace"):
        raise SandboxError("cannot run the image here: strace is not installed (apt-get install strace)")
    try:
        done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--pid", "--net", "--fork", "true"],
                              capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SandboxError(f"cannot run the image here: unshare failed ({err})") from err
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no reason given"]
        raise SandboxError(f"cannot run the image here: new user, mount, PID and network namespaces are not "
                           f"allowed ({why[0]})")


def command_of(image: Image, override: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Return the argv a run starts: ``override``, else Entrypoint + Cmd."""
    if override:
        return tuple(override)
    return tuple(command_line(image))


def run(image: Image, argv: tuple[str, ...], scratch: Path, timeout: float = TIMEOUT, trace: bool = True) -> Run:
    """Export ``image`` below ``scratch`` and run ``argv`` in the sandbox; return what it did.
    Raises SandboxError if the sandbox itself cannot be set up."""
    if not argv:
        raise SandboxError("nothing to run: the image has no Entrypoint or Cmd (give a command)")
    work = Path(tempfile.mkdtemp(prefix="sandbox-", dir=scratch))
    root = work / "root"
    export_dir(image, root, ExportOptions(to="dir"))
    for d in ("proc", "dev", "tmp"):
        path = root / d
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise SandboxError(f"cannot run the image: /{d} in it is not a directory")
        path.mkdir(exist_ok=True)
    cfg = runtime_config(image)
    env = [str(e) for e in cfg.get("Env") or [] if "=" in str(e)]
    workdir = str(cfg.get("WorkingDir") or "/")
    log = work / "trace"
    inner = ["/usr/bin/env", "-i", *env, shutil.which("unshare") or "unshare", f"--root={root}", f"--wd={workdir}",
             "--", *argv]
    if trace:
        inner = [shutil.which("strace") or "strace", "-f", "-qq", "-y", "-s", "4096", "-o", str(log),
                 "-e", "trace=%file,%process", *inner]
    script = 'mount --rbind /dev "$0/dev" && mount -t tmpfs tmpfs "$0/tmp" && exec "$@"'
    outer = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--net", "--fork", "--propagation",
             "private", f"--mount-proc={root}/proc", "/bin/sh", "-c", script, str(root), *inner]
    try:
        done = subprocess.run(outer, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        status, out, err, timed_out = done.returncode, done.stdout, done.stderr, False
    except subprocess.TimeoutExpired as expired:
        status, out, err, timed_out = None, expired.stdout or b"", expired.stderr or b"", True
    except OSError as error:
        raise SandboxError(f"cannot start the sandbox: {error}") from error
    result = Run(tuple(argv), status, out, err, timed_out=timed_out)
    if trace:
        if not log.exists():
            raise SandboxError(f"the sandbox did not start: {err.decode('utf-8', 'replace').strip()[-300:]}")
        result.opened = parse_trace(log.read_text("utf-8", "surrogateescape"), str(root), workdir)
    shutil.rmtree(work, ignore_errors=True)
    return result


def parse_trace(text: str, root: str, workdir: str) -> list[Opened]:
    """Return the paths a strace log shows the program touching after the chroot, as paths of
    the image (relative ones joined to the directory strace names, or the working directory)."""
    out: list[Opened] = []
    inside = False
    for line in text.splitlines():
        m = _EVENT.match(line)
        if m is None:
            continue
        call = m.group("call")
        if not inside:
            inside = call == "chroot" and m.group("ret") == "0"
            continue
        if call not in _CALLS:
            continue
        arg = _PATH_ARG.search(m.group("args"))
        if arg is None:
            continue
        path = _unescape(arg.group("path"))
        if not path.startswith("/"):
            base = arg.group("dir")
            base = base[len(root):] or "/" if base is not None and (base == root or base.startswith(root + "/")) \
                else workdir
            path = posixpath.join(base, path)
        path = posixpath.normpath(path)
        if path.startswith(("/proc", "/dev", "/sys")):
            continue
        ret = m.group("ret")
        out.append(Opened(path, ret != "?" and not ret.startswith("-"), call, m.group("err") in ("ENOENT", "ENOTDIR")))
    return out


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    try:
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode(
            "utf-8", "surrogateescape")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return text


@dataclass(frozen=True)
class Verdict:
    """The comparison of a run of the original image and one of the slim image."""

    same: bool
    what: str  # what differs ("" when the same)
    first_missing: str  # the first path the slim run looked for in vain that the original found
    original: Run
    slim: Run


def compare(original: Run, slim: Run, is_file=lambda path: True, in_slim=lambda path: True) -> Verdict:
    """Return whether two runs exited the same way and printed the same, and the first file
    the slim run missed: one it looked for in vain that the original run found, else (a
    program may look in a directory listing instead, as Python's import system does) the
    first the original run opened that the slim image lacks. Only files of the original
    image count (``is_file``: not directories, nor files a run made itself)."""
    differs = []
    if original.status != slim.status:
        differs.append(f"exit status {slim.status} (the original: {original.status})")
    if original.stdout != slim.stdout:
        differs.append("standard output")
    if original.stderr != slim.stderr:
        differs.append("standard error")
    found = {o.path for o in original.opened if o.found}
    missing = next((o.path for o in slim.opened if o.missing and o.path in found and is_file(o.path)), "")
    if not missing and differs:
        seen = {o.path for o in slim.opened if o.found}
        missing = next((p for p in original.found_paths() if p not in seen and is_file(p) and not in_slim(p)), "")
    return Verdict(not differs, ", ".join(differs), missing, original, slim)


def host_has_tools() -> bool:
    """Return whether unshare and strace are installed (tests use this to skip)."""
    return bool(shutil.which("unshare") and shutil.which("strace")) and os.path.exists("/bin/sh")
