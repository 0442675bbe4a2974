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

import collections
import contextlib
import re
import threading
from collections.abc import Generator, Iterator

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
    longer match are caught before the caller commits them. ``SpanReader`` is the same pass
    on a thread of its own, ahead of the sinks."""
    sinks = [sink for _start, _end, sink in spans]
    ranges = [(start, end) for start, end, _sink in spans]
    with contextlib.closing(_span_pieces(layer, where, ranges, threads)) as items:
        for chunk, pieces in items:
            _deliver(chunk, pieces, sinks)


# a piece of a range in one chunk: (range number, first byte, end byte in the chunk, whether the range ends there)
Piece = tuple[int, int, int, bool]


def _span_pieces(layer: Layer, where: str, ranges: list[tuple[int, int]], threads: bool,
                 stopped=lambda: False) -> Generator[tuple[bytes, list[Piece]], None, None]:
    """Yield each chunk of ``layer``'s tar that holds bytes of ``ranges``, with those pieces;
    read to the end and checked (length, digest, diff_id) before the generator ends. Stops
    early, unchecked, when ``stopped()`` says so."""
    raw = _open(layer, where)
    blob = BlobStream(raw, where, threads)
    k, n, pos = 0, len(ranges), 0
    try:
        with _changed_if_broken(where):
            for chunk in _bounded(blob, layer, where):
                if stopped():
                    return
                stop = pos + len(chunk)
                pieces: list[Piece] = []
                while k < n and ranges[k][0] < stop:
                    start, end = ranges[k]
                    pieces.append((k, max(start, pos) - pos, min(end, stop) - pos, end <= stop))
                    if end > stop:
                        break
                    k += 1
                if pieces:
                    yield chunk, pieces
                pos = stop
        if k < n:
            raise DigestMismatchError(f"{where}: the layer changed since the image was opened: its tar now ends at "
                                      f"byte {pos}, before a member the scan found at {ranges[k][0]}")
        if layer.uncompressed_size and pos != layer.uncompressed_size:
            raise DigestMismatchError(f"{where}: the layer changed since the image was opened: its tar is now "
                                      f"{pos} bytes long, the scan found {layer.uncompressed_size}")
        _verify(blob, layer, where)
    finally:
        blob.close()
        raw.close()


def _deliver(chunk: bytes, pieces: list[Piece], sinks: list[Sink]) -> None:
    view = memoryview(chunk)
    for k, lo, hi, ends in pieces:
        if lo < hi:
            sinks[k].write(view[lo:hi])
        if ends:
            sinks[k].end()


_DONE = object()


def _compact(chunk: bytes, pieces: list[Piece]) -> tuple[bytes, list[Piece]]:
    """Return the bytes of ``pieces`` alone (and the pieces within them) where they are a small
    part of ``chunk``: a few header blocks kept out of a megabyte need not hold it all."""
    need = sum(hi - lo for _k, lo, hi, _ends in pieces)
    if need * 4 > len(chunk):
        return chunk, pieces
    view = memoryview(chunk)
    parts, out, at = [], [], 0
    for k, lo, hi, ends in pieces:
        parts.append(view[lo:hi])
        out.append((k, at, at + hi - lo, ends))
        at += hi - lo
    return b"".join(parts), out


class SpanReader:
    """``restream_spans`` ahead of the sinks: from ``start`` on, a thread of its own reads the
    layer, hashes it and checks it to its end, keeping the bytes of ``ranges`` (at most BUDGET
    of them at once) until ``deliver`` hands them to the sinks, in order, on the caller's
    thread; ``deliver`` returns once the layer is verified, raising what the checks found.
    Bytes that no range needs are read and hashed without waiting for the caller: the layers
    after the one being copied are hashed meanwhile. ``close`` stops the thread."""

    BUDGET = 8 << 20

    def __init__(self, layer: Layer, where: str, ranges: list[tuple[int, int]], threads: bool = False):
        self.layer, self.where, self.ranges, self.threads = layer, where, ranges, threads
        self._items: collections.deque = collections.deque()
        self._held = 0
        self._ready = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="slimmer-reader", daemon=True)

    def start(self) -> SpanReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with contextlib.closing(_span_pieces(self.layer, self.where, self.ranges, self.threads,
                                                 lambda: self._stopped)) as items:
                for chunk, pieces in items:
                    data, pieces = _compact(chunk, pieces)
                    if not self._put((data, pieces), len(data)):
                        return
        except BaseException as err:  # noqa: BLE001 -- handed to the caller's thread, raised there
            self._put(err, 0)
        else:
            self._put(_DONE, 0)

    def _put(self, item, size: int) -> bool:
        with self._ready:
            while self._held and self._held + size > self.BUDGET and not self._stopped:
                self._ready.wait()
            if self._stopped:
                return False
            self._items.append((item, size))
            self._held += size
            self._ready.notify_all()
            return True

    def _get(self):
        with self._ready:
            while not self._items:
                self._ready.wait()
            item, size = self._items.popleft()
            self._held -= size
            self._ready.notify_all()
            return item

    def deliver(self, sinks: list[Sink]) -> None:
        """Hand each range's bytes to its sink (``sinks[k]`` for range k), then end it; return
        when the layer is read to its end and verified."""
        while (item := self._get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            _deliver(item[0], item[1], sinks)

    def close(self) -> None:
        with self._ready:
            self._stopped = True
            self._ready.notify_all()
        if self._thread.ident is not None:
            self._thread.join()


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
