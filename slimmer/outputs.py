"""Where a command's outputs go, by one rule for every command (``slim -o``, ``export DEST``,
``--html``, ``--junit``, ``--sarif``):

- ``-`` is standard output; at most one output of a run may be, and a tar is never written
  to a terminal;
- a tar output's compression follows its name (``.tar.gz``/``.tgz``, ``.tar.zst``,
  ``.tar.xz``) unless ``--compression`` says otherwise;
- an existing path is replaced only with ``--force``, otherwise refused before any work;
- no output may be an input (the same file, or inside an input OCI layout directory, or a
  directory holding the input), nor another output of the same run;
- files are written atomically (``slimmer.atomic``): they appear only when complete.

Imports the atomic writer, the codecs and the errors.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from slimmer.atomic import atomic_file, output_error, scratch_dir
from slimmer.errors import OutputError
from slimmer.tar.codec import CompressingWriter, compression_for

STDOUT = "-"
AUTO = "auto"


@dataclass(frozen=True)
class Output:
    """One output of a run: what it is (for messages), where (``-``: standard output), whether
    ``--force`` may replace what is there, and whether it is a directory or a tar."""

    what: str
    path: str | None
    force: bool = False
    directory: bool = False
    tar: bool = False

    @property
    def to_stdout(self) -> bool:
        return self.path == STDOUT


def compression(out: Output, given: str = AUTO) -> str:
    """Return the compression of a tar output: ``given`` unless it is ``auto``, else what the
    name's extension says (none for standard output)."""
    if given != AUTO:
        return given
    return "none" if out.path in (None, STDOUT) else compression_for(out.path)


def _inside(path: str, directory: str) -> bool:
    try:
        return os.path.commonpath([os.path.realpath(path), os.path.realpath(directory)]) == \
            os.path.realpath(directory)
    except ValueError:
        return False


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _is_empty_dir(path: str) -> bool:
    try:
        return os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)
    except OSError:
        return False


def check(outs: Sequence[Output], inputs: Sequence[str], stdout: BinaryIO | None = None) -> None:
    """Raise OutputError unless every output of ``outs`` may be written by the rule above;
    ``inputs`` are the paths the run reads (``-`` and None are skipped)."""
    given = [o for o in outs if o.path]
    to_stdout = [o for o in given if o.to_stdout]
    if len(to_stdout) > 1:
        raise OutputError(f"only one output can go to standard output, not the {to_stdout[0].what} and the "
                          f"{to_stdout[1].what}")
    for o in to_stdout:
        if o.tar and _isatty(stdout if stdout is not None else sys.stdout):
            raise OutputError(f"refusing to write the {o.what} (a tar) to a terminal: redirect standard output "
                              f"or name a file")
    read = [i for i in inputs if i and i != STDOUT and os.path.lexists(i)]
    seen: list[Output] = []
    for o in given:
        if o.to_stdout:
            continue
        path = str(o.path)
        for i in read:
            if _same(path, i) or (os.path.isdir(i) and _inside(path, i)):
                raise OutputError(f"refusing to write the {o.what} to {path}: it is, or lies inside, the input "
                                  f"{i} (slimmer never touches its input)")
            if o.directory and os.path.isdir(path) and _inside(i, path):
                raise OutputError(f"refusing to write the {o.what} to {path}: the input {i} lies inside it")
        for other in seen:
            if _same(path, str(other.path)):
                raise OutputError(f"the {other.what} and the {o.what} would both be written to {path}")
        seen.append(o)
        if os.path.lexists(path) and not o.force and not (o.directory and _is_empty_dir(path)):
            if o.directory and os.path.isdir(path) and not os.path.islink(path):
                raise OutputError(f"cannot write the {o.what} to {path}: the directory is not empty "
                                  f"(give --force to replace it)")
            raise OutputError(f"cannot write the {o.what} to {path}: it exists (give --force to replace it)")
        if not o.directory and os.path.isdir(path) and not os.path.islink(path):
            raise OutputError(f"cannot write the {o.what} to {path}: it is a directory")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise OutputError(f"cannot write the {o.what} to {path}: directory {parent} does not exist")


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _stdout() -> BinaryIO:
    return sys.stdout.buffer


@contextlib.contextmanager
def opened(out: Output, compress: str = "none", stdout: BinaryIO | None = None) -> Iterator[BinaryIO]:
    """Yield a binary stream for ``out``, compressing as ``compress`` says: standard output,
    or a staged file renamed into place when the block ends without an error."""
    if out.to_stdout:
        stream = stdout if stdout is not None else _stdout()
        writer = CompressingWriter(stream, compress)
        try:
            yield writer  # type: ignore[misc]
            writer.close()
        except BrokenPipeError:
            raise
        except OSError as err:
            raise output_error("standard output", err, out.what) from err
        return
    with atomic_file(str(out.path), out.what) as f:
        if compress == "none":
            yield f
        else:
            writer = CompressingWriter(f, compress)
            yield writer  # type: ignore[misc]
            writer.close()


def write(out: Output, data: bytes, stdout: BinaryIO | None = None) -> None:
    """Write ``data`` to ``out`` (standard output, or a file written atomically)."""
    with opened(out, "none", stdout) as f:
        f.write(data)


def copy_file(source: str | os.PathLike, out: Output, compress: str = "none", stdout: BinaryIO | None = None,
              chunk: int = 1 << 20) -> None:
    """Copy the file ``source`` (staged by the caller) to ``out``, compressing as asked."""
    with open(source, "rb") as src, opened(out, compress, stdout) as f:
        while data := src.read(chunk):
            f.write(data)


@contextlib.contextmanager
def staged_path(out: Output, compress: str = "none", stdout: BinaryIO | None = None) -> Iterator[str]:
    """Yield the path a writer that stages its own output (``rewriter.writer``) should write:
    ``out``'s own path for a plain file, else a scratch file that is then compressed or sent
    to standard output, and removed."""
    if not out.to_stdout and compress == "none":
        yield str(out.path)
        return
    with scratch_dir(None if out.to_stdout else out.path, "out") as tmp:
        path = tmp / "output.tar"
        yield str(path)
        copy_file(path, out, compress, stdout)
