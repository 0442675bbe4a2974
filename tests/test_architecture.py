"""ARCHITECTURE.md matches the code: every module and name it points at exists, and imports go
the way it says (the reader knows nothing of the analyzer, and so on)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "slimmer"
TEXT = (ROOT / "ARCHITECTURE.md").read_text()

# `path/module.py Name`, `module.Name`, `path/module.py`: what the page points at
_MODULE_NAME = re.compile(r"`([a-z_/]+\.py)(?: ([A-Za-z_][A-Za-z_.]*))?`")
_DOTTED = re.compile(r"`([a-z_]+(?:/[a-z_]+)*)\.([A-Za-z_][A-Za-z_0-9]*)`")


def _module(path: str) -> str:
    rel = path.removesuffix(".py").replace("/", ".")
    return "slimmer." + rel if not rel.startswith("slimmer") else rel


def _references() -> list[tuple[str, str | None]]:
    refs = []
    for path, name in _MODULE_NAME.findall(TEXT):
        refs.append((_module(path), name or None))
    for module, name in _DOTTED.findall(TEXT):
        if name == "py":
            continue
        if module in ("reader", "layers", "model", "render", "blobs", "restream"):
            full = {"blobs": "reader/blobs", "restream": "tar/restream"}.get(module, module)
            refs.append((_module(full), name))
    return refs


@pytest.mark.parametrize("module, name", _references(), ids=lambda v: str(v))
def test_every_module_and_name_the_page_names_exists(module, name):
    """A module (or a name in it) the architecture page points at is really there."""
    for candidate in (module, module.rsplit(".", 1)[0] + "." + module.rsplit(".", 1)[1]):
        try:
            found = importlib.import_module(candidate)
            break
        except ModuleNotFoundError:
            found = None
    assert found is not None, module
    if name:
        obj = found
        for part in name.split("."):
            assert hasattr(obj, part), f"{module} has no {name}"
            obj = getattr(obj, part)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {m for m in out if m.startswith("slimmer")}


FORBIDDEN = {
    # (importer package, imported package): what the layers forbid
    "slimmer/reader": ("slimmer.analyzer", "slimmer.rewriter", "slimmer.render", "slimmer.cli", "slimmer.exporter"),
    "slimmer/tar": ("slimmer.analyzer", "slimmer.rewriter", "slimmer.render", "slimmer.cli", "slimmer.reader"),
    "slimmer/analyzer": ("slimmer.reader", "slimmer.rewriter", "slimmer.render", "slimmer.cli"),
    "slimmer/rewriter": ("slimmer.reader", "slimmer.render", "slimmer.cli", "slimmer.exporter"),
    "slimmer/exporter.py": ("slimmer.reader", "slimmer.analyzer", "slimmer.rewriter", "slimmer.render"),
    "slimmer/layers.py": ("slimmer.reader", "slimmer.analyzer", "slimmer.rewriter", "slimmer.tar"),
    "slimmer/model.py": ("slimmer.",),
    "slimmer/render": ("slimmer.reader", "slimmer.rewriter", "slimmer.cli", "slimmer.exporter"),
}


@pytest.mark.parametrize("where, banned", FORBIDDEN.items(), ids=FORBIDDEN.keys())
def test_imports_go_down_the_layers(where, banned):
    """No module imports a layer above its own (the page's 'imports go down this list')."""
    target = ROOT / where
    files = [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))
    for path in files:
        for module in _imports(path):
            assert not module.startswith(banned), f"{path.relative_to(ROOT)} imports {module}"


def test_the_layers_block_names_every_package_and_module():
    """Each package and module of slimmer/ has its line in the page's list of layers (a new
    one cannot arrive without saying where it sits)."""
    block = TEXT.split("## The layers", 1)[1].split("```")[1]
    listed = {line.split()[0].rstrip("/") for line in block.splitlines() if line and not line.startswith(" ")}
    present = {p.name.removesuffix(".py") for p in PACKAGE.iterdir()
               if (p.is_dir() and any(p.glob("*.py")))
               or (p.suffix == ".py" and not p.name.startswith("_"))}
    listed = {name.removesuffix(".py") for name in listed}
    assert present <= listed, sorted(present - listed)
    assert listed <= present, sorted(listed - present)
