"""Follow the frame and block headers of a zstd stream (RFC 8878) to tell a clean end from a cut.

python-zstandard's stream reader returns b"" both at the end of a complete stream and when the
input stops in the middle of a frame (a missing content checksum, half a second frame), so the
decoder alone cannot say whether a layer was truncated. The tracker sees the same compressed
bytes the decoder does, skips over block payloads without copying them, and knows at the end
whether the stream stopped exactly on a frame boundary.
"""

from __future__ import annotations

from slimmer.errors import FormatError
from slimmer.model import Stream

ZSTD_FRAME = 0xFD2FB528
SKIPPABLE_FIRST, SKIPPABLE_LAST = 0x184D2A50, 0x184D2A5F
_DICT_ID_BYTES = (0, 1, 2, 4)
_FCS_BYTES = (0, 2, 4, 8)  # for FCS_flag 0 the size is 1 byte when Single_Segment is set
_RESERVED_BLOCK = 3
_RLE_BLOCK = 1


class ZstdFrameTracker:
    """A state machine fed the compressed bytes in order; ``at_frame_end`` says if they ended cleanly."""

    def __init__(self, where: str):
        self.where = where
        self.frames = 0
        self._state = "magic"
        self._want = 4
        self._buf = bytearray()
        self._skip = 0
        self._checksum = False

    @property
    def at_frame_end(self) -> bool:
        return self._state == "magic" and not self._buf and not self._skip and self.frames > 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end:
            if self._skip:
                take = min(self._skip, end - pos)
                self._skip -= take
                pos += take
                continue
            take = min(self._want - len(self._buf), end - pos)
            self._buf += view[pos:pos + take]
            pos += take
            if len(self._buf) == self._want:
                field = bytes(self._buf)
                self._buf.clear()
                self._advance(field)

    def _expect(self, state: str, want: int) -> None:
        self._state, self._want = state, want

    def _advance(self, field: bytes) -> None:
        state = self._state
        if state == "magic":
            magic = int.from_bytes(field, "little")
            if magic == ZSTD_FRAME:
                self._expect("descriptor", 1)
            elif SKIPPABLE_FIRST <= magic <= SKIPPABLE_LAST:
                self._expect("skippable", 4)
            else:
                raise FormatError(f"{self.where}: corrupt zstd stream (no frame magic where a frame must start)")
        elif state == "skippable":
            self._skip = int.from_bytes(field, "little")
            self._expect("magic", 4)
        elif state == "descriptor":
            self._descriptor(field[0])
        elif state == "header":
            self._expect("block", 3)
        elif state == "block":
            self._block(int.from_bytes(field, "little"))
        else:  # "checksum"
            self.frames += 1
            self._expect("magic", 4)

    def _descriptor(self, d: int) -> None:
        if d & 0x08:
            raise FormatError(f"{self.where}: corrupt zstd stream (reserved frame header bit set)")
        single_segment = bool(d & 0x20)
        fcs_flag = d >> 6
        fcs = 1 if fcs_flag == 0 and single_segment else _FCS_BYTES[fcs_flag]
        rest = (0 if single_segment else 1) + _DICT_ID_BYTES[d & 0x03] + fcs
        self._checksum = bool(d & 0x04)
        if rest:
            self._expect("header", rest)
        else:
            self._expect("block", 3)

    def _block(self, header: int) -> None:
        block_type = (header >> 1) & 0x03
        if block_type == _RESERVED_BLOCK:
            raise FormatError(f"{self.where}: corrupt zstd stream (reserved block type)")
        self._skip = 1 if block_type == _RLE_BLOCK else header >> 3
        if not header & 0x01:
            self._expect("block", 3)
        elif self._checksum:
            self._expect("checksum", 4)
        else:
            self.frames += 1
            self._expect("magic", 4)


class TrackedSource:
    """A readable that passes a source's bytes through unchanged and feeds them to a tracker."""

    def __init__(self, source: Stream, tracker: ZstdFrameTracker):
        self.source = source
        self.tracker = tracker

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        if data:
            self.tracker.feed(data)
        return data
