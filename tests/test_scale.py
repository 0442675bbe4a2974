"""Costs that must grow about linearly with the input (issue 14, class 8): thousands of layers,
tens of thousands of named directories, a PATH of 20,000 entries, an ELF file naming 65,000
libraries, paths a thousand components deep. Each runs as a real `slimmer` process; its time
and peak memory are bounded generously (a loaded 2-core CI machine) and written to
SLIMMER_SCALE_REPORT when that is set, for the record."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

import hostile
from hostile import D, F, S, blob, docker_files, raw_tar, write_tar
from peak import run_slimmer

REPORT = os.environ.get("SLIMMER_SCALE_REPORT")


def _record(name: str, measured) -> None:
    if REPORT:
        path = Path(REPORT)
        data = json.loads(path.read_text()) if path.exists() else {}
        data[name] = {"seconds": round(measured.seconds, 2), "peak_mb": round(measured.peak_mb, 1),
                      "exit": measured.returncode}
        path.write_text(json.dumps(data, indent=2))


def _config(blobs, **runtime) -> dict:
    cfg = hostile.config_for(blobs)
    cfg["config"] = runtime
    return cfg


def _elf(needed: list[str], interp: str = "") -> bytes:
    """A minimal 64-bit little-endian x86-64 ELF executable whose dynamic segment names
    ``needed`` (and PT_INTERP ``interp``): enough for the loader-facts reader."""
    strtab = b"\0" + b"".join(n.encode() + b"\0" for n in needed)
    offsets, at = [], 1
    for n in needed:
        offsets.append(at)
        at += len(n) + 1
    dyn = b"".join(struct.pack("<qQ", 1, off) for off in offsets)
    interp_bytes = interp.encode() + b"\0" if interp else b""
    phnum = 3 if interp else 2
    header_size = 64 + 56 * phnum
    strtab_off = header_size + len(interp_bytes)
    dyn_off = strtab_off + len(strtab)
    dyn += struct.pack("<qQ", 5, strtab_off) + struct.pack("<qQ", 10, len(strtab)) + struct.pack("<qQ", 0, 0)
    total = dyn_off + len(dyn)
    ehdr = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    ehdr += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 64, 0, 0, 64, 56, phnum, 64, 0, 0)
    phdrs = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, total, total, 0x1000)  # PT_LOAD of the whole file
    phdrs += struct.pack("<IIQQQQQQ", 2, 6, dyn_off, dyn_off, dyn_off, len(dyn), len(dyn), 8)
    if interp:
        phdrs += struct.pack("<IIQQQQQQ", 3, 4, header_size, header_size, header_size, len(interp_bytes),
                             len(interp_bytes), 1)
    return ehdr + phdrs + interp_bytes + strtab + dyn


def _run(tmp_path: Path, name: str, *args):
    measured = run_slimmer(*args, report=tmp_path / "peak")
    _record(name, measured)
    return measured


def test_slim_of_4500_layers_stays_linear(tmp_path):
    """A 4,500-layer archive: prune once merged the layers below each hard link (one
    filesystem per layer kept, 3.1 GB); now one pass."""
    layers = []
    for i in range(4500):
        members = [F(f"f{i:05d}", b"%d" % i), F(f"h{i:05d}", b"")]
        if i % 3 == 2:
            members = [hostile.H(f"h{i:05d}", f"f{i - 1:05d}"), F(f"f{i:05d}", b"%d" % i)]
        layers.append(blob(raw_tar(members)))
    archive = write_tar(docker_files(layers), tmp_path / "image.tar")
    measured = _run(tmp_path, "4,500 layers, slim --mode prune", "slim", archive, "-o", tmp_path / "out.tar",
                    "--no-cache")
    assert measured.returncode == 0, measured.stderr
    assert measured.seconds < 30 and measured.peak_mb < 600


def test_30000_directories_named_on_the_command_line(tmp_path):
    """An entrypoint naming 30,000 directories of the image: each is kept whole, and prune
    must not compare every file with every kept directory."""
    dirs = [f"data/d{i:05d}" for i in range(30_000)]
    members = [D("app"), F("app/tool", _elf([]), mode=0o755), D("data")]
    for d in dirs:
        members += [D(d), F(f"{d}/f", b"x")]
    blobs = [blob(raw_tar(members))]
    cfg = _config(blobs, Entrypoint=["/app/tool", *(f"/{d}" for d in dirs)])
    archive = write_tar(docker_files(blobs, config=cfg), tmp_path / "image.tar")
    for mode in ("prune", "distroless"):
        measured = _run(tmp_path, f"30,000 named directories, slim --mode {mode}", "slim", archive, "--mode", mode,
                        "-o", tmp_path / f"{mode}.tar", "--no-cache")
        assert measured.returncode == 0, measured.stderr
        assert measured.seconds < 30 and measured.peak_mb < 800


def test_a_path_of_20000_entries(tmp_path):
    """A PATH of 20,000 directories and a script running 2,000 commands: each lookup must not
    walk the whole PATH through the merged filesystem again."""
    members = [D("bin"), F("bin/sh", _elf([]), mode=0o755), D("usr"), D("usr/bin")]
    members += [F(f"usr/bin/c{i}", _elf([]), mode=0o755) for i in range(2_000)]
    script = "#!/bin/sh\n" + "".join(f"c{i} --flag\n" for i in range(2_000))
    members += [D("app"), F("app/run.sh", script.encode(), mode=0o755)]
    blobs = [blob(raw_tar(members))]
    path = ":".join([f"/nowhere/p{i}" for i in range(20_000)] + ["/usr/bin", "/bin"])
    cfg = _config(blobs, Entrypoint=["/app/run.sh"], Env=[f"PATH={path}"])
    archive = write_tar(docker_files(blobs, config=cfg), tmp_path / "image.tar")
    measured = _run(tmp_path, "PATH of 20,000 entries, 2,000 commands, slim --mode distroless", "slim", archive,
                    "--mode", "distroless", "-o", tmp_path / "out.tar", "--no-cache")
    assert measured.returncode == 0, measured.stderr
    assert measured.seconds < 30 and measured.peak_mb < 600


def test_an_elf_file_naming_65000_libraries(tmp_path):
    """DT_NEEDED 65,000 times: each name is looked up in the loader's directories once, not
    every directory walked again for every name."""
    names = [f"libx{i}.so" for i in range(65_000)]
    members = [D("lib"), D("app"), F("app/tool", _elf(names), mode=0o755)]
    members += [F(f"lib/libx{i}.so", _elf([]), mode=0o644) for i in range(0, 65_000, 10)]
    blobs = [blob(raw_tar(members))]
    cfg = _config(blobs, Entrypoint=["/app/tool"])
    archive = write_tar(docker_files(blobs, config=cfg), tmp_path / "image.tar")
    measured = _run(tmp_path, "65,000 DT_NEEDED, slim --mode distroless", "slim", archive, "--mode", "distroless",
                    "-o", tmp_path / "out.tar", "--no-cache")
    assert measured.returncode == 0, measured.stderr
    assert measured.seconds < 30 and measured.peak_mb < 800


@pytest.mark.parametrize("command", ["analyze", "export", "slim"])
def test_paths_a_thousand_components_deep(tmp_path, command):
    """1,000 files each 1,000 components deep, symlinks among them: no recursion, no
    quadratic walk."""
    deep = "/".join(["d"] * 1000)
    members = [F(f"{deep}/f{i}", b"x", pax={"path": f"{deep}/f{i}"}) for i in range(1000)]
    members.append(S("top", deep))
    archive = write_tar(docker_files([blob(raw_tar(members))]), tmp_path / "image.tar")
    out = tmp_path / "out.tar"
    args = {"analyze": ("analyze", archive, "--json"), "export": ("export", archive, out),
            "slim": ("slim", archive, "-o", out)}[command]
    measured = _run(tmp_path, f"1,000 paths 1,000 deep, {command}", *args, "--no-cache")
    assert measured.returncode == 0, measured.stderr
    assert measured.seconds < 60 and measured.peak_mb < 400
