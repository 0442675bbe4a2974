"""The questions ``slimmer audit --report`` answers, from the audit database alone (no blob is
read): the fleet table, could-save by repository, the layers most images share, the images
holding a package or bytes of a category. Each returns records (numbers, not text).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from slimmer.audit.db import Database, filters
from slimmer.fleet import FleetRow


@dataclass(frozen=True)
class Selection:
    """Which images a report covers: one storage (or all), repositories and tags by glob."""

    storage: str | None = None
    repo_glob: str = "*"
    tag_glob: str = "*"

    def takes(self, repository: str, tag: str) -> bool:
        return fnmatch.fnmatchcase(repository, self.repo_glob) and fnmatch.fnmatchcase(tag, self.tag_glob)


@dataclass(frozen=True)
class RepositoryFigure:
    """A repository's images summed: what slimming them all could save."""

    storage: str
    repository: str
    images: int
    failed: int
    total_bytes: int
    true_wasted_bytes: int
    could_save_bytes: int


@dataclass(frozen=True)
class SharedLayer:
    """A layer (by diff_id) that several images stack: how many, in how many repositories."""

    diff_id: str
    images: int
    repositories: int
    size_bytes: int
    stored_bytes: int
    created_by: str


@dataclass(frozen=True)
class Holding:
    """An image holding what was asked for: a package (``name``, ``version``, ``manager``) or
    bytes of a category (``name``; ``wasted_bytes`` of it shadowed or deleted)."""

    storage: str
    repository: str
    tag: str
    platform: str
    name: str
    version: str
    manager: str
    size_bytes: int
    files: int
    wasted_bytes: int = 0


def answer(db: Database, sel: Selection, by: str = "image", package: str | None = None,
           category: str | None = None, top: int = 20) -> tuple[str, list[Any]]:
    """Return (kind, records) for one report: the images holding ``package`` or ``category``
    if asked, else by ``by``: "image" (kind "images": fleet rows), "repository" or "layer"."""
    if package:
        return "packages", with_package(db, sel, package)
    if category:
        return "categories", with_category(db, sel, category)
    if by == "repository":
        return "repositories", by_repository(db, sel)
    if by == "layer":
        return "layers", shared_layers(db, sel, top)
    return "images", fleet(db, sel)


def fleet(db: Database, sel: Selection) -> list[FleetRow]:
    """Return the fleet rows of the selected images."""
    return [row for _id, repo, tag, _policy, row in db.image_rows(sel.storage) if sel.takes(repo, tag)]


def by_repository(db: Database, sel: Selection) -> list[RepositoryFigure]:
    """Return each repository's images summed, the largest could-save first."""
    where, params = filters(storage=sel.storage)
    rows = db.query(f"SELECT storage, repository, tag, error, total_bytes, true_wasted_bytes, could_save_bytes "
                    f"FROM images{where}", params)
    sums: dict[tuple[str, str], list[int]] = {}
    for storage, repo, tag, error, total, wasted, could in rows:
        if sel.takes(repo, tag):
            acc = sums.setdefault((storage, repo), [0, 0, 0, 0, 0])
            acc[0] += 1
            acc[1] += 1 if error else 0
            acc[2] += int(total)
            acc[3] += int(wasted)
            acc[4] += int(could)
    out = [RepositoryFigure(s, r, *v) for (s, r), v in sums.items()]
    return sorted(out, key=lambda f: (-f.could_save_bytes, f.storage, f.repository))


def shared_layers(db: Database, sel: Selection, top: int = 20) -> list[SharedLayer]:
    """Return the layers stacked by two or more of the selected images, the most shared first."""
    where, params = filters(**{"i.storage": sel.storage})
    rows = db.query(f"SELECT l.diff_id, l.size_bytes, l.stored_bytes, l.created_by, i.repository, i.tag, i.id "
                    f"FROM image_layers l JOIN images i ON i.id = l.image_id{where}", params)
    groups: dict[str, dict] = {}
    for diff_id, size, stored, created_by, repo, tag, image_id in rows:
        if not sel.takes(repo, tag):
            continue
        g = groups.setdefault(diff_id, {"images": set(), "repos": set(), "size": int(size), "stored": int(stored),
                                        "by": created_by})
        g["images"].add(image_id)
        g["repos"].add(repo)
    out = [SharedLayer(d, len(g["images"]), len(g["repos"]), g["size"], g["stored"], g["by"])
           for d, g in groups.items() if len(g["images"]) > 1]
    return sorted(out, key=lambda s: (-s.images, -s.size_bytes, s.diff_id))[:top]


def with_package(db: Database, sel: Selection, name: str) -> list[Holding]:
    """Return the selected images holding package ``name`` (any manager, any version), the
    largest first."""
    where, params = filters(**{"p.name": name, "i.storage": sel.storage})
    rows = db.query(f"SELECT i.storage, i.repository, i.tag, i.platform, p.name, p.version, p.manager, "
                    f"p.size_bytes, p.files FROM image_packages p JOIN images i ON i.id = p.image_id{where}", params)
    out = [Holding(storage, repo, tag, plat, pname, version, manager, int(size), int(files))
           for storage, repo, tag, plat, pname, version, manager, size, files in rows if sel.takes(repo, tag)]
    return sorted(out, key=lambda h: (-h.size_bytes, h.repository, h.tag, h.platform))


def with_category(db: Database, sel: Selection, category: str) -> list[Holding]:
    """Return the selected images whose final filesystem holds bytes of ``category``, the
    largest first."""
    where, params = filters(**{"c.category": category, "i.storage": sel.storage})
    rows = db.query(f"SELECT i.storage, i.repository, i.tag, i.platform, c.category, c.final_bytes, c.files, "
                    f"c.wasted_bytes FROM image_categories c JOIN images i ON i.id = c.image_id{where}", params)
    out = [Holding(r[0], r[1], r[2], r[3], r[4], "", "", int(r[5]), int(r[6]), int(r[7]))
           for r in rows if sel.takes(r[1], r[2]) and (int(r[5]) or int(r[7]))]
    return sorted(out, key=lambda h: (-h.size_bytes, h.repository, h.tag, h.platform))
