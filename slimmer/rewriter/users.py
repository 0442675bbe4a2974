"""The ``nonroot`` user of distroless images (uid and gid 65532) and the ``--user`` setting.

/etc/passwd and /etc/group keep every line they had; a ``nonroot`` line is added when no line
has that name or id. An image without them gets distroless's three users. Imports the model,
``slimmer.layers`` and rewriter modules.
"""

from __future__ import annotations

import re

from slimmer.errors import SlimError
from slimmer.layers import MergedFS
from slimmer.model import DIR, FILE
from slimmer.rewriter.contents import Contents
from slimmer.rewriter.lookup import resolve
from slimmer.rewriter.plan import Synthetic

NONROOT = "nonroot"
NONROOT_ID = 65532
NONROOT_HOME = "home/nonroot"
PASSWD_LINE = f"{NONROOT}:x:{NONROOT_ID}:{NONROOT_ID}:{NONROOT}:/{NONROOT_HOME}:/sbin/nologin"
GROUP_LINE = f"{NONROOT}:x:{NONROOT_ID}:"
DEFAULT_PASSWD = ("root:x:0:0:root:/root:/sbin/nologin\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" + PASSWD_LINE + "\n")
DEFAULT_GROUP = "root:x:0:\nnobody:x:65534:\n" + GROUP_LINE + "\n"
NSSWITCH = ("passwd:         files\ngroup:          files\nshadow:         files\nhosts:          files dns\n"
            "networks:       files\nprotocols:      files\nservices:       files\nethers:         files\n"
            "rpc:            files\n")

_ID = re.compile(r"^\d+(:\d+)?$")


def config_user(user: str | None, current: str) -> str:
    """Return the config ``User`` for ``--user`` (``nonroot``, ``UID`` or ``UID:GID``); the
    image's ``current`` one when not asked."""
    if user is None:
        return current
    if user == NONROOT:
        return f"{NONROOT_ID}:{NONROOT_ID}"
    if not _ID.match(user) or any(int(part) > 0xFFFFFFFE for part in user.split(":")):
        raise SlimError(f"--user {user!r}: expected nonroot, a numeric UID or UID:GID")
    return user


def with_nonroot(text: str | None, line: str, default: str) -> str:
    """Return passwd or group ``text`` with the nonroot ``line`` added if missing; ``default``
    when the image has no such file."""
    if text is None:
        return default
    for row in text.splitlines():
        fields = row.split(":")
        if len(fields) >= 3 and (fields[0] == NONROOT or fields[2] == str(NONROOT_ID)):
            return text
    return text + ("" if not text or text.endswith("\n") else "\n") + line + "\n"



def account_files(fs: MergedFS, contents: Contents, mtime: int) -> list[Synthetic]:
    """Return the Synthetic /etc/passwd, /etc/group (and nonroot's home) that give the image a
    ``nonroot`` user; a rewritten file keeps its lines, owner, mode and mtime."""
    out = []
    added = False
    for name, line, default in (("etc/passwd", PASSWD_LINE, DEFAULT_PASSWD), ("etc/group", GROUP_LINE, DEFAULT_GROUP)):
        found = resolve(fs, "/" + name)
        text, meta = None, None
        if found is not None and found.is_file:
            text = contents.text(found.path)
            meta = found.version.entry if found.version is not None else None
        new = with_nonroot(text, line, default)
        if text is not None and new == text and found is not None and found.path == name:
            continue  # it has a nonroot line already: kept as it is
        added = added or name == "etc/passwd"
        why = "added the nonroot user (65532)" if text is not None else "distroless base set: root, nobody, nonroot"
        out.append(Synthetic(name, FILE, new.encode("utf-8", "surrogateescape"),
                             meta.mode if meta else 0o644, meta.uid if meta else 0, meta.gid if meta else 0,
                             meta.mtime if meta else mtime, why))
    if added and not fs.exists(NONROOT_HOME):
        out.append(Synthetic(NONROOT_HOME, DIR, b"", 0o700, NONROOT_ID, NONROOT_ID, mtime, "the nonroot user's home"))
    return out
