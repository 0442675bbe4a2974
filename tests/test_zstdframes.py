"""The zstd frame tracker: a stream is complete only when it stops exactly on a frame boundary."""

import io
import os

import pytest
import zstandard

from slimmer.errors import FormatError, TruncatedError
from slimmer.tar.codec import uncompressed_chunks
from slimmer.tar.zstdframes import ZstdFrameTracker

DATA = b"".join(os.urandom(700) + b"a" * 2000 for _ in range(200))
SKIPPABLE = (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"hello"


def _frames(**kw) -> bytes:
    return zstandard.ZstdCompressor(**kw).compress(DATA)


def _streamed() -> bytes:
    """A frame written by the streaming API: many blocks, no content size in the header."""
    out = io.BytesIO()
    with zstandard.ZstdCompressor(write_checksum=True).stream_writer(out, closefd=False) as w:
        for i in range(0, len(DATA), 10_000):
            w.write(DATA[i:i + 10_000])
            w.flush(zstandard.FLUSH_BLOCK)
    return out.getvalue()


def _track(stream: bytes, piece: int) -> ZstdFrameTracker:
    tracker = ZstdFrameTracker("t")
    for i in range(0, len(stream), piece):
        tracker.feed(stream[i:i + piece])
    return tracker


STREAMS = {
    "checksummed": _frames(write_checksum=True),
    "no checksum": _frames(write_checksum=False),
    "no content size": _frames(write_content_size=False),
    "two frames": _frames() + _frames(write_checksum=True),
    "skippable frame first": SKIPPABLE + _frames(),
    "streamed, many blocks": _streamed(),
}


@pytest.mark.parametrize("piece", [1, 7, 1 << 20])
@pytest.mark.parametrize("name", STREAMS)
def test_complete_streams_end_on_a_frame(name, piece):
    tracker = _track(STREAMS[name], piece)
    assert tracker.at_frame_end
    assert tracker.frames >= 1


@pytest.mark.parametrize("name", STREAMS)
def test_every_cut_is_seen(name):
    stream = STREAMS[name]
    frame_ends = {len(SKIPPABLE) + len(_frames())} if name == "skippable frame first" else set()
    for cut in sorted({1, 3, 4, 5, 9, len(stream) // 3, len(stream) - 4, len(stream) - 1}):
        tracker = _track(stream[:cut], 4096)
        assert not tracker.at_frame_end or cut in frame_ends, cut


def test_decoder_refuses_a_missing_checksum_and_a_half_frame():
    whole = STREAMS["checksummed"]
    assert b"".join(uncompressed_chunks(io.BytesIO(whole + whole), "t")) == DATA + DATA
    for cut in (whole[:-4], whole + whole[: len(whole) // 2]):
        with pytest.raises(TruncatedError, match="zstd stream is truncated"):
            b"".join(uncompressed_chunks(io.BytesIO(cut), "t"))


def test_garbage_after_the_last_frame_is_corrupt():
    with pytest.raises(FormatError, match="no frame magic"):
        _track(STREAMS["checksummed"] + b"GARBAGE!", 4096)


def test_reserved_bits_are_corrupt():
    whole = bytearray(STREAMS["checksummed"])
    whole[4] |= 0x08
    with pytest.raises(FormatError, match="reserved"):
        _track(bytes(whole), 4096)
