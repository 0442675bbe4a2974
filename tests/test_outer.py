"""The one-pass walk over an archive on a stream agrees with tarfile on every header format."""

import io
import tarfile

import pytest

from slimmer.errors import FormatError, TruncatedError
from slimmer.tar.outer import iter_members

LONG = "blobs/sha256/" + "d" * 120 + "/layer.tar"


def _archive(fmt) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, data in [("manifest.json", b"[]"), (LONG, b"x" * 1500), ("empty", b"")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        d = tarfile.TarInfo("dir")
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        link = tarfile.TarInfo("abc/layer.tar")
        link.type = tarfile.SYMTYPE
        link.linkname = "../" + LONG
        tf.addfile(link)
    return buf.getvalue()


class _Trickle(io.RawIOBase):
    """Hands out at most ``step`` bytes per read, as a pipe may."""

    def __init__(self, data: bytes, step: int):
        self.data, self.pos, self.step = data, 0, step

    def read(self, n=-1):
        n = self.step if n is None or n < 0 else min(n, self.step)
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu long names", "pax"])
@pytest.mark.parametrize("step", [1 << 20, 100])
def test_members_equal_tarfile(fmt, step):
    raw = _archive(fmt)
    want = []
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        for info in tf:
            data = tf.extractfile(info).read() if info.isreg() else b""
            want.append((info.name, info.type, info.size if info.isreg() else 0, info.linkname, data))
    got = [(m.name.rstrip("/"), m.type, m.size, m.linkname, m.data.read())
           for m in iter_members(_Trickle(raw, step), "t")]
    assert got == want


def test_a_member_left_unread_is_skipped():
    names = [m.name for m in iter_members(io.BytesIO(_archive(tarfile.PAX_FORMAT)), "t")]
    assert names == ["manifest.json", LONG, "empty", "dir", "abc/layer.tar"]


def test_truncated_and_corrupt_archives_are_refused():
    raw = _archive(tarfile.PAX_FORMAT)
    with pytest.raises(TruncatedError):
        list(iter_members(io.BytesIO(raw[:2100]), "t"))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        tf.getmembers()
        end = tf.offset  # where the end-of-archive zero blocks start
    with pytest.raises(TruncatedError, match="no end-of-archive marker"):
        list(iter_members(io.BytesIO(raw[:end]), "t"))
    bad = bytearray(raw)
    bad[0] ^= 0xFF  # breaks the first header's checksum
    with pytest.raises(FormatError, match="not a readable tar"):
        list(iter_members(io.BytesIO(bytes(bad)), "t"))
