"""The one verified re-stream of a layer: every command that reads a layer's bytes a second
time (slim, export, the writers, facts for images built in code) reads them here.

``restream`` opens the stored blob again, decompresses it, and parses it with the one layer
tar parser (``slimmer.tar.scan``, with full headers). Each member must agree with the scan the
image was opened with (path, kind, size, mode, owner, link, mtime), and at the end of the
layer the stored bytes must hash to the layer's digest and the tar to its diff_id. A change
after the image was opened is a DigestMismatchError that names the layer; members handed out
before it is found are only ever staged, so callers write nothing that is not verified (they
commit their output after ``restream`` returns). A stream that no longer parses is the same
error: it parsed when the image was opened. ``restream_spans`` is the same pass for a writer
that copies byte ranges the scan located (``slimmer.tar.collect.SPANS``): nothing is parsed,
and the length and digest checks at the end are what guard the bytes. ``chunks`` is the same
check for writers that want the uncompressed tar itself. Sinks report their own failures as
OutputError, never FormatError. Imports the model, the errors and ``slimmer.tar``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from slimmer.errors import DigestMismatchError, FormatError, InputError, SlimmerError, TruncatedError
from slimmer.model import Entry, Layer, Stream
from slimmer.tar.codec import BlobStream
from slimmer.tar.scan import Header, Sink, TarScanner, Visit

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def _open(layer: Layer, where: str) -> Stream:
    try:
        return _Reading(layer.opener(), where)
    except OSError as err:
        raise InputError(f"cannot read {where}: {err.strerror or err}") from err


class _SourceError(Exception):
    """Carries an error the stored blob's own stream raised past the re-stream's checks: it is
    the source's failure (reported as it is), not a sign that the layer changed."""

    def __init__(self, err: SlimmerError):
        super().__init__(str(err))
        self.err = err


class _Reading:
    """The stored blob, its read errors turned into one clear error (a sink's write errors
    pass through as they are: they are the output's)."""

    def __init__(self, raw: Stream, where: str):
        self.raw, self.where = raw, where

    def read(self, n: int = -1) -> bytes:
        try:
            return self.raw.read(n)
        except OSError as err:
            raise _SourceError(InputError(f"cannot read {self.where}: {err.strerror or err}")) from err
        except SlimmerError as err:
            raise _SourceError(err) from err

    def close(self) -> None:
        self.raw.close()


@contextlib.contextmanager
def _changed_if_broken(where: str) -> Iterator[None]:
    """Report a stream that no longer decodes or parses as a changed layer: the same bytes
    decoded and parsed when the image was opened. The source's own read errors pass as they are."""
    try:
        yield
    except _SourceError as err:
        raise err.err from None
    except DigestMismatchError:
        raise
    except FormatError as err:
        raise DigestMismatchError(f"{where}: the layer changed since the image was opened "
                                  f"({str(err).removeprefix(where + ': ')})") from err


def _verify(blob: BlobStream, layer: Layer, where: str) -> None:
    digest = blob.digest()
    if _DIGEST_RE.match(layer.digest or "") and digest != layer.digest:
        raise DigestMismatchError(f"{where}: the layer changed since the image was opened: its blob now hashes "
                                  f"to {digest}, expected {layer.digest}")
    diff_id = blob.diff_id()
    if _DIGEST_RE.match(layer.diff_id or "") and diff_id != layer.diff_id:
        raise DigestMismatchError(f"{where}: the layer changed since the image was opened: its tar now hashes "
                                  f"to {diff_id}, expected diff_id {layer.diff_id}")


def _bounded(blob: BlobStream, layer: Layer, where: str) -> Iterator[bytes]:
    limit = layer.uncompressed_size or None
    for chunk in blob.chunks():
        if limit is not None and blob.uncompressed_size > limit:
            raise DigestMismatchError(f"{where}: the layer changed since the image was opened: its tar is now "
                                      f"longer than the {limit} bytes it had")
        yield chunk


def restream(layer: Layer, visit: Visit, where: str, detail: bool = True, threads: bool = False) -> None:
    """Read ``layer`` once more from its stored blob to its end, calling ``visit(index, entry,
    header)`` for every member (``index`` is its position in ``layer.entries``); a sink it
    returns gets the member's data. Raises DigestMismatchError, naming ``where``, when the
    layer is not what it was when scanned, and the reader's errors for a broken stream. With
    ``threads`` the digests are computed on threads beside the parsing."""
    entries = layer.entries

    def checked(index: int, entry: Entry, header: Header | None) -> Sink | None:
        expected = entries[index] if index < len(entries) else None
        if expected is None or entry[:8] != expected[:8]:
            raise DigestMismatchError(
                f"{where}: the layer changed since the image was opened: member {index} is now "
                f"{entry.path!r}, the scan found {expected.path if expected else 'no such member'!r}")
        return visit(index, expected, header)

    raw = _open(layer, where)
    blob = BlobStream(raw, where, threads)
    try:
        scanner = TarScanner(where, None, checked, detail)
        with _changed_if_broken(where):
            for chunk in _bounded(blob, layer, where):
                scanner.feed(chunk)
            if not scanner.ended and not scanner.complete_members():
                raise TruncatedError(f"{where}: the layer's tar breaks off")
            if scanner.ended:
                scanner.finish()
        if scanner.count != len(entries):
            raise DigestMismatchError(f"{where}: the layer changed since the image was opened: it now has "
                                      f"{scanner.count} members, the scan found {len(entries)}")
        _verify(blob, layer, where)
    finally:
        blob.close()
        raw.close()


def restream_spans(layer: Layer, where: str, spans: list[tuple[int, int, Sink]], threads: bool = False) -> None:
    """Read ``layer`` once more to its end, handing each sink of ``spans`` (``(start, end,
    sink)``, sorted, not overlapping, offsets of the uncompressed tar) the bytes of its range,
    then ``end()``; nothing is parsed. The same checks as ``restream`` at the end: the layer
    must be as long as it was and hash to its digest and diff_id, so bytes handed out that no
    longer match are caught before the caller commits them."""
    raw = _open(layer, where)
    blob = BlobStream(raw, where, threads)
    todo = iter(spans)
    current = next(todo, None)
    pos = 0
    try:
        for chunk in _bounded(blob, layer, where):
            view = memoryview(chunk)
            stop = pos + len(chunk)
            while current is not None and current[0] < stop:
                start, end, sink = current
                lo, hi = max(start, pos), min(end, stop)
                if lo < hi:
                    sink.write(view[lo - pos:hi - pos])
                if end > stop:
                    break
                sink.end()
                current = next(todo, None)
            pos = stop
        if current is not None:
            raise DigestMismatchError(f"{where}: the layer changed since the image was opened: its tar now ends at "
                                      f"byte {pos}, before a member the scan found at {current[0]}")
        if layer.uncompressed_size and pos != layer.uncompressed_size:
            raise DigestMismatchError(f"{where}: the layer changed since the image was opened: its tar is now "
                                      f"{pos} bytes long, the scan found {layer.uncompressed_size}")
        _verify(blob, layer, where)
    finally:
        blob.close()
        raw.close()


def chunks(layer: Layer, where: str) -> Iterator[bytes]:
    """Yield the uncompressed tar of ``layer``, read again and verified: the last chunk is
    followed by the digest checks, so a consumer that commits only after the iterator is
    exhausted never commits bytes that changed since the image was opened."""
    raw = _open(layer, where)
    blob = BlobStream(raw, where)
    try:
        with _changed_if_broken(where):
            yield from _bounded(blob, layer, where)
        _verify(blob, layer, where)
    finally:
        blob.close()
        raw.close()
