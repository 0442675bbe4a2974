"""A layer cache: scans of layers already read, kept in SQLite and keyed by diff_id and the
content policy that ran (its facts are part of the scan).

A base layer shared by many images is then read once. A hit also needs the same stored size
and the same fingerprint (SHA-256 of the blob's first and last 64 KiB), so a truncated or
replaced blob is read again; a change in the middle of a blob that keeps its size is not seen
on a hit: ``--no-cache`` verifies every byte. Safe for several processes (WAL, busy timeout);
any SQLite failure turns the cache off for the run instead of failing it.
"""

from __future__ import annotations

import logging
import marshal
import os
import sqlite3
import zlib
from pathlib import Path

from slimmer.reader.blobs import LayerScan, decode_contents, encode_contents

log = logging.getLogger(__name__)
# 4: entries as columns (``blobs.encode_contents``); 5: scans whose sparse maps were checked
# (``tar.scan._check_sparse``), which a version 4 scan may not have been
SCHEMA = 5
SAMPLE = 64 << 10


def cache_dir() -> Path:
    """Return slimmer's cache directory: $SLIMMER_CACHE_DIR, else $XDG_CACHE_HOME/slimmer, else
    ~/.cache/slimmer."""
    base = os.environ.get("SLIMMER_CACHE_DIR")
    if not base:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "slimmer")
    return Path(base)


def default_path() -> Path:
    """Return the cache file, in ``cache_dir()``."""
    return cache_dir() / f"layers-v{SCHEMA}.sqlite"


class LayerCache:
    """Layer scans by diff_id. Open lazily; every method degrades to a miss on SQLite errors."""

    def __init__(self, path: Path | None = None):
        self.path = path or default_path()
        self._db: sqlite3.Connection | None = None
        self._broken = False
        self.hits = 0
        self.misses = 0

    def _conn(self) -> sqlite3.Connection | None:
        if self._db is None and not self._broken:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS layers (diff_id TEXT, policy TEXT, stored_size INTEGER, "
                           "fingerprint TEXT, digest TEXT, compression TEXT, uncompressed_size INTEGER, "
                           "entries BLOB, notes TEXT, PRIMARY KEY (diff_id, policy))")
                self._db = db
            except (sqlite3.Error, OSError) as err:
                log.warning("layer cache %s unusable, going on without it: %s", self.path, err)
                self._broken = True
        return self._db

    def get(self, diff_id: str, stored_size: int, fingerprint: str, policy: str | None = None) -> LayerScan | None:
        """Return the cached scan of this layer made under content policy ``policy`` (None:
        any scan of it will do, its entries are what is asked for), or None."""
        db = self._conn()
        if db is None:
            return None
        try:
            if policy is None:
                row = db.execute("SELECT digest, compression, uncompressed_size, entries, notes, policy FROM layers "
                                 "WHERE diff_id=? AND stored_size=? AND fingerprint=? LIMIT 1",
                                 (diff_id, stored_size, fingerprint)).fetchone()
            else:
                row = db.execute("SELECT digest, compression, uncompressed_size, entries, notes, policy FROM layers "
                                 "WHERE diff_id=? AND policy=? AND stored_size=? AND fingerprint=?",
                                 (diff_id, policy, stored_size, fingerprint)).fetchone()
            if row is None:
                self.misses += 1
                return None
            entries, facts = decode_contents(row[3])
            notes = tuple(marshal.loads(row[4])) if row[4] else ()
        except (sqlite3.Error, ValueError, EOFError, TypeError, zlib.error) as err:
            log.warning("layer cache read failed: %s", err)
            return None
        self.hits += 1
        return LayerScan(row[0], stored_size, diff_id, row[2], row[1], entries, facts, row[5], notes)

    def put(self, scan: LayerScan, fingerprint: str) -> None:
        """Keep ``scan`` (made under ``scan.policy``) for later runs."""
        db = self._conn()
        if db is None:
            return
        blob = encode_contents(scan)
        try:
            with db:
                db.execute("INSERT OR REPLACE INTO layers VALUES (?,?,?,?,?,?,?,?,?)",
                           (scan.diff_id, scan.policy, scan.stored_size, fingerprint, scan.digest, scan.compression,
                            scan.uncompressed_size, blob, marshal.dumps(list(scan.notes))))
        except sqlite3.Error as err:
            log.warning("layer cache write failed: %s", err)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
