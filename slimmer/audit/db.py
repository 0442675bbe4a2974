"""The audit database: SQLite (a file; by default ``audit.sqlite`` in the cache directory) or
PostgreSQL (``postgresql://...``), one schema for both, created and upgraded by numbered
migrations (``MIGRATIONS``; the README documents the tables).

It keeps the scan of every layer blob an audit has read (keyed by blob digest and content
policy: a registry names a blob by its digest, verified at that first read), what each tag
pointed at, and one row per image with the figures the reports ask for. Reports read only
this database, never the storage. Imports no analyzer and no reader but the scan's encoding.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from slimmer.audit.records import ImageRecord
from slimmer.errors import DatabaseError
from slimmer.fleet import FleetRow
from slimmer.reader.blobs import LayerScan, decode_contents, encode_contents
from slimmer.reader.cache import cache_dir

# Each migration: (version, what it adds, statements). {id}, {blob} and {real} become each
# dialect's types. Never edit a migration that has shipped: add the next one.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "audits, layer scans, tags, images and their layers, categories and packages", [
        """CREATE TABLE audits (
            id {id}, storage TEXT NOT NULL, kind TEXT NOT NULL, policy TEXT NOT NULL, scheduler TEXT NOT NULL,
            started TEXT NOT NULL, finished TEXT, images BIGINT NOT NULL DEFAULT 0,
            failed BIGINT NOT NULL DEFAULT 0, reused BIGINT NOT NULL DEFAULT 0,
            blobs_read BIGINT NOT NULL DEFAULT 0, bytes_read BIGINT NOT NULL DEFAULT 0,
            layers_scanned BIGINT NOT NULL DEFAULT 0, retried BIGINT NOT NULL DEFAULT 0)""",
        """CREATE TABLE layer_scans (
            digest TEXT NOT NULL, policy TEXT NOT NULL, diff_id TEXT NOT NULL, stored_size BIGINT NOT NULL,
            compression TEXT NOT NULL, uncompressed_size BIGINT NOT NULL, contents {blob} NOT NULL,
            notes TEXT NOT NULL, audit_id BIGINT NOT NULL, PRIMARY KEY (digest, policy))""",
        "CREATE INDEX layer_scans_by_diff_id ON layer_scans (diff_id)",
        """CREATE TABLE tags (
            storage TEXT NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL,
            policy TEXT NOT NULL, platforms TEXT NOT NULL, audit_id BIGINT NOT NULL,
            PRIMARY KEY (storage, repository, tag))""",
        """CREATE TABLE images (
            id {id}, storage TEXT NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL, platform TEXT NOT NULL,
            source TEXT NOT NULL, tags TEXT NOT NULL, tag_digest TEXT NOT NULL, manifest_digest TEXT NOT NULL,
            config_digest TEXT NOT NULL, policy TEXT NOT NULL, audit_id BIGINT NOT NULL,
            total_bytes BIGINT NOT NULL, final_bytes BIGINT NOT NULL, stored_bytes BIGINT NOT NULL,
            files BIGINT NOT NULL, layers BIGINT NOT NULL, dive_efficiency {real} NOT NULL,
            dive_wasted_bytes BIGINT NOT NULL, true_wasted_bytes BIGINT NOT NULL, could_save_bytes BIGINT NOT NULL,
            worst_finding TEXT NOT NULL, worst_finding_bytes BIGINT NOT NULL, error TEXT NOT NULL,
            UNIQUE (storage, repository, tag, platform))""",
        """CREATE TABLE image_layers (
            image_id BIGINT NOT NULL, position BIGINT NOT NULL, digest TEXT NOT NULL, diff_id TEXT NOT NULL,
            stored_bytes BIGINT NOT NULL, size_bytes BIGINT NOT NULL, created_by TEXT NOT NULL,
            PRIMARY KEY (image_id, position))""",
        "CREATE INDEX image_layers_by_diff_id ON image_layers (diff_id)",
        """CREATE TABLE image_categories (
            image_id BIGINT NOT NULL, category TEXT NOT NULL, final_bytes BIGINT NOT NULL, files BIGINT NOT NULL,
            wasted_bytes BIGINT NOT NULL, PRIMARY KEY (image_id, category))""",
        "CREATE INDEX image_categories_by_category ON image_categories (category)",
        """CREATE TABLE image_packages (
            image_id BIGINT NOT NULL, manager TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,
            size_bytes BIGINT NOT NULL, files BIGINT NOT NULL)""",
        "CREATE INDEX image_packages_by_name ON image_packages (name)",
        "CREATE INDEX image_packages_by_image ON image_packages (image_id)",
    ]),
    (2, "what each image could save by kind of fix", [
        """CREATE TABLE image_fixes (
            image_id BIGINT NOT NULL, fix TEXT NOT NULL, bytes BIGINT NOT NULL, PRIMARY KEY (image_id, fix))""",
    ]),
]
LATEST = MIGRATIONS[-1][0]
CHILDREN = ("image_layers", "image_categories", "image_packages", "image_fixes")
TYPES = {
    "sqlite": {"id": "INTEGER PRIMARY KEY", "blob": "BLOB", "real": "REAL"},
    "postgresql": {"id": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA", "real": "DOUBLE PRECISION"},
}
IMAGE_COLUMNS = ("storage", "repository", "tag", "platform", "source", "tags", "tag_digest", "manifest_digest",
                 "config_digest", "policy", "audit_id", "total_bytes", "final_bytes", "stored_bytes", "files",
                 "layers", "dive_efficiency", "dive_wasted_bytes", "true_wasted_bytes", "could_save_bytes",
                 "worst_finding", "worst_finding_bytes", "error")
ROW_COLUMNS = ("source", "tags", "total_bytes", "final_bytes", "layers", "dive_efficiency", "dive_wasted_bytes",
               "true_wasted_bytes", "could_save_bytes", "worst_finding", "worst_finding_bytes", "error", "platform",
               "manifest_digest")


def default_path() -> Path:
    """Return the SQLite file audits use unless told: ``audit.sqlite`` in the cache directory."""
    return cache_dir() / "audit.sqlite"


def is_postgresql(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Database:
    """One connection to the audit database; every failure is a DatabaseError naming it."""

    def __init__(self, conn: Any, dialect: str, where: str, errors: tuple[type[BaseException], ...]):
        self.conn, self.dialect, self.where, self._errors = conn, dialect, where, errors
        self._depth = 0  # transactions open: only the outermost one begins and commits

    @classmethod
    def open(cls, target: str | os.PathLike | None = None, upto: int = LATEST) -> Database:
        """Open (creating and migrating to version ``upto``) the database ``target``: a
        ``postgresql://`` URL, an SQLite file, or None for the default file."""
        text = str(target) if target is not None else ""
        if is_postgresql(text):
            db = cls._postgresql(text)
        else:
            path = Path(text) if text else default_path()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
            except (sqlite3.Error, OSError) as err:
                raise DatabaseError(f"cannot open the audit database {path}: {err}") from err
            db = cls(conn, "sqlite", str(path), (sqlite3.Error,))
        try:
            db.migrate(upto)
        except BaseException:
            db.close()
            raise
        return db

    @classmethod
    def _postgresql(cls, url: str) -> Database:
        try:
            import psycopg
        except ImportError as err:
            raise DatabaseError("a postgresql:// database needs the psycopg package (pip install 'psycopg[binary]')") \
                from err
        shown = _without_password(url)
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=20)
        except psycopg.Error as err:
            raise DatabaseError(f"cannot connect to the audit database {shown}: {_one_line(err)}") from err
        return cls(conn, "postgresql", shown, (psycopg.Error,))

    def close(self) -> None:
        with suppress(*self._errors):
            self.conn.close()

    # ---- plumbing ----------------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.dialect == "postgresql" else text

    def execute(self, sql: str, params: Sequence = ()) -> Any:
        try:
            return self.conn.execute(self._sql(sql), tuple(params))
        except self._errors as err:
            raise DatabaseError(f"audit database {self.where}: {_one_line(err)}") from err

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> None:
        rows = [tuple(r) for r in rows]
        if not rows:
            return
        try:
            if self.dialect == "postgresql":
                with self.conn.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)
            else:
                self.conn.executemany(sql, rows)
        except self._errors as err:
            raise DatabaseError(f"audit database {self.where}: {_one_line(err)}") from err

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        cur = self.execute(sql, params)
        try:
            return list(cur.fetchall())
        except self._errors as err:
            raise DatabaseError(f"audit database {self.where}: {_one_line(err)}") from err

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block as one transaction (SQLite: taking the write lock at once); a block
        inside another is part of it. Whatever ends the block early (an error, a Ctrl-C) rolls
        it back; should even the rollback fail (a statement cut off mid-way), the transaction
        was never committed and ends with the connection."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
        self._depth = 1
        try:
            yield
        except BaseException:
            with suppress(*self._errors):
                self.conn.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0
        self.execute("COMMIT")

    # ---- schema --------------------------------------------------------------------------------

    def version(self) -> int:
        rows = self.query("SELECT MAX(version) FROM schema_migrations")
        return int(rows[0][0] or 0)

    def migrate(self, upto: int = LATEST) -> list[int]:
        """Apply the migrations this database lacks, up to ``upto``; return their versions."""
        self.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, "
                     "applied TEXT NOT NULL)")
        applied = []
        with self.transaction():
            if self.dialect == "postgresql":
                self.execute("SELECT pg_advisory_xact_lock(7151310)")  # one migrating client at a time
            have = self.version()
            if have > LATEST:
                raise DatabaseError(f"audit database {self.where} has schema version {have}; this slimmer knows "
                                    f"versions up to {LATEST} (upgrade slimmer)")
            for version, name, statements in MIGRATIONS:
                if have < version <= upto:
                    for statement in statements:
                        self.execute(statement.format(**TYPES[self.dialect]))
                    self.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, now()))
                    applied.append(version)
        return applied

    # ---- audits --------------------------------------------------------------------------------

    def begin_audit(self, storage: str, kind: str, policy: str, scheduler: str) -> int:
        with self.transaction():
            rows = self.query("INSERT INTO audits (storage, kind, policy, scheduler, started) VALUES (?, ?, ?, ?, ?) "
                              "RETURNING id", (storage, kind, policy, scheduler, now()))
        return int(rows[0][0])

    def finish_audit(self, audit_id: int, **counts: int) -> None:
        names = sorted(counts)
        with self.transaction():
            self.execute(f"UPDATE audits SET finished = ?, {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
                         (now(), *[counts[n] for n in names], audit_id))

    # ---- layer scans ---------------------------------------------------------------------------

    def scanned(self, digests: Iterable[str], policy: str) -> set[str]:
        """Return which of ``digests`` have a scan made under ``policy``."""
        wanted = sorted(set(digests))
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            part = wanted[i:i + 500]
            rows = self.query(f"SELECT digest FROM layer_scans WHERE policy = ? AND digest IN "
                              f"({', '.join('?' * len(part))})", (policy, *part))
            found.update(r[0] for r in rows)
        return found

    def get_scan(self, digest: str, policy: str) -> LayerScan | None:
        rows = self.query("SELECT diff_id, stored_size, compression, uncompressed_size, contents, notes "
                          "FROM layer_scans WHERE digest = ? AND policy = ?", (digest, policy))
        if not rows:
            return None
        diff_id, stored_size, compression, uncompressed_size, contents, notes = rows[0]
        try:
            entries, facts = decode_contents(bytes(contents))
        except (ValueError, EOFError, TypeError, zlib.error) as err:
            raise DatabaseError(f"audit database {self.where}: the scan of {digest} is damaged ({err})") from err
        return LayerScan(digest, int(stored_size), diff_id, int(uncompressed_size), compression, entries, facts,
                         policy, tuple(json.loads(notes)))

    def put_scan(self, scan: LayerScan, audit_id: int) -> None:
        """Keep the scan of a blob whose digest was verified."""
        blob = encode_contents(scan)
        with self.transaction():
            self.execute("DELETE FROM layer_scans WHERE digest = ? AND policy = ?", (scan.digest, scan.policy))
            self.execute("INSERT INTO layer_scans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (scan.digest, scan.policy, scan.diff_id, scan.stored_size, scan.compression,
                          scan.uncompressed_size, blob, json.dumps(list(scan.notes)), audit_id))

    # ---- tags and images -----------------------------------------------------------------------

    def tag_state(self, storage: str, repository: str, tag: str) -> tuple[str, str, list[str]] | None:
        """Return (digest, policy, platforms) of the tag as the last audit of it found it."""
        rows = self.query("SELECT digest, policy, platforms FROM tags WHERE storage = ? AND repository = ? AND tag = ?",
                          (storage, repository, tag))
        return (rows[0][0], rows[0][1], rows[0][2].split()) if rows else None

    def put_tag(self, storage: str, repository: str, tag: str, digest: str, policy: str, platforms: list[str],
                audit_id: int) -> None:
        with self.transaction():
            self.execute("DELETE FROM tags WHERE storage = ? AND repository = ? AND tag = ?",
                         (storage, repository, tag))
            if digest:
                self.execute("INSERT INTO tags VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (storage, repository, tag, digest, policy, " ".join(platforms), audit_id))

    def image_rows(self, storage: str | None = None, repository: str | None = None,
                   tag: str | None = None) -> list[tuple[int, str, str, str, FleetRow]]:
        """Return (id, repository, tag, policy, fleet row) of the images kept, optionally of one
        storage, repository and tag."""
        where, params = filters(storage=storage, repository=repository, tag=tag)
        rows = self.query(f"SELECT id, repository, tag, policy, {', '.join(ROW_COLUMNS)} FROM images{where} "
                          f"ORDER BY storage, repository, tag, platform", params)
        out = []
        for r in rows:
            values = dict(zip(ROW_COLUMNS, r[4:]))
            values["tags"] = tuple(json.loads(values["tags"]))
            values["dive_efficiency"] = float(values["dive_efficiency"])
            out.append((int(r[0]), r[1], r[2], r[3], FleetRow(**values)))
        return out

    def replace_images(self, storage: str, repository: str, tag: str, records: list[ImageRecord], policy: str,
                       audit_id: int, drop: Iterable[int]) -> None:
        """Store ``records`` for one tag (or archive) in one transaction, deleting the image
        rows ``drop`` (ids) and any row that a record replaces."""
        with self.transaction():
            ids = set(drop)
            for rec in records:
                rows = self.query("SELECT id FROM images WHERE storage = ? AND repository = ? AND tag = ? AND "
                                  "platform = ?", (storage, repository, tag, rec.platform))
                ids.update(int(r[0]) for r in rows)
            self._delete_images(ids)
            for rec in records:
                self._insert_image(storage, rec, policy, audit_id)

    def forget(self, storage: str, keys: Iterable[tuple[str, str]]) -> int:
        """Delete the tags (repository, tag) of ``storage`` and their images; return how many images."""
        ids: set[int] = set()
        with self.transaction():
            for repository, tag in keys:
                rows = self.query("SELECT id FROM images WHERE storage = ? AND repository = ? AND tag = ?",
                                  (storage, repository, tag))
                ids.update(int(r[0]) for r in rows)
                self.execute("DELETE FROM tags WHERE storage = ? AND repository = ? AND tag = ?",
                             (storage, repository, tag))
            self._delete_images(ids)
        return len(ids)

    def known_tags(self, storage: str) -> set[tuple[str, str]]:
        """Return every (repository, tag) of ``storage`` the database holds rows for."""
        rows = self.query("SELECT repository, tag FROM images WHERE storage = ? UNION "
                          "SELECT repository, tag FROM tags WHERE storage = ?", (storage, storage))
        return {(r[0], r[1]) for r in rows}

    def _delete_images(self, ids: Iterable[int]) -> None:
        ids = sorted(set(ids))
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            marks = ", ".join("?" * len(part))
            for table in CHILDREN:
                self.execute(f"DELETE FROM {table} WHERE image_id IN ({marks})", part)
            self.execute(f"DELETE FROM images WHERE id IN ({marks})", part)

    def _insert_image(self, storage: str, rec: ImageRecord, policy: str, audit_id: int) -> None:
        r = rec.row
        values = (storage, rec.repository, rec.tag, r.platform, r.source, json.dumps(list(r.tags)), rec.tag_digest,
                  r.manifest_digest, rec.config_digest, policy, audit_id, r.total_bytes, r.final_bytes,
                  rec.stored_bytes, rec.files, r.layers, r.dive_efficiency, r.dive_wasted_bytes, r.true_wasted_bytes,
                  r.could_save_bytes, r.worst_finding, r.worst_finding_bytes, r.error)
        rows = self.query(f"INSERT INTO images ({', '.join(IMAGE_COLUMNS)}) VALUES "
                          f"({', '.join('?' * len(IMAGE_COLUMNS))}) RETURNING id", values)
        image_id = int(rows[0][0])
        self.executemany("INSERT INTO image_layers VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [(image_id, x.position, x.digest, x.diff_id, x.stored_bytes, x.size_bytes, x.created_by)
                          for x in rec.layers])
        self.executemany("INSERT INTO image_categories VALUES (?, ?, ?, ?, ?)",
                         [(image_id, c.category, c.final_bytes, c.files, c.wasted_bytes) for c in rec.categories])
        self.executemany("INSERT INTO image_packages VALUES (?, ?, ?, ?, ?, ?)",
                         [(image_id, p.manager, p.name, p.version, p.size_bytes, p.files) for p in rec.packages])
        self.executemany("INSERT INTO image_fixes VALUES (?, ?, ?)", [(image_id, f, b) for f, b in rec.fixes])


def filters(**values: str | None) -> tuple[str, tuple]:
    """Return a WHERE clause (and its parameters) for the columns given a value."""
    given = [(k, v) for k, v in values.items() if v is not None]
    if not given:
        return "", ()
    return " WHERE " + " AND ".join(f"{k} = ?" for k, _ in given), tuple(v for _, v in given)


def _one_line(err: BaseException) -> str:
    """Return a driver's message on one line (libpq's span several)."""
    return " ".join(str(err).split())


def _without_password(url: str) -> str:
    """Return ``url`` with any password replaced by ***, for messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
