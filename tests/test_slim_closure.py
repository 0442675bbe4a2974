"""The entrypoint closure: what the Entrypoint/Cmd of an image needs, found statically through
PATH, WorkingDir, symlink chains, ELF interpreters and libraries, shebangs, shell scripts and
interpreted runtimes, with a reason for each kept path and a note for each blind spot."""

from __future__ import annotations

import pytest
from test_elf import make_elf

from slimmer.layers import merge
from slimmer.rewriter.closure import Closure, entrypoint_closure
from slimmer.rewriter.contents import Contents
from slimmer.rewriter.lookup import find_command, resolve

from builders import Dir, File, Symlink, image, layer, to_model

LD = "/lib64/ld-linux-x86-64.so.2"
ELF = File(make_elf(elf_type=2), mode=0o755)  # a static program
MULTI = "usr/lib/x86_64-linux-gnu"


def prog(**kw) -> File:
    return File(make_elf(**kw), mode=0o755)


def closure_of(tmp_path, files: dict, **config) -> Closure:
    cfg = {"Env": config.pop("env", ["PATH=/usr/local/bin:/usr/bin:/bin"])}
    for key in ("Entrypoint", "Cmd", "WorkingDir"):
        if key.lower() in config:
            cfg[key] = config.pop(key.lower())
    img = to_model(image(layer(files, auto_dirs=True), config={"config": cfg}))
    fs = merge(img)
    return entrypoint_closure(img, fs, Contents(img, fs, tmp_path))


GLIBC = {
    "bin": Symlink("usr/bin"), "lib": Symlink("usr/lib"), "lib64": Symlink("usr/lib64"),
    "usr/lib64/ld-linux-x86-64.so.2": Symlink(f"/{MULTI}/ld-linux-x86-64.so.2"),
    f"{MULTI}/ld-linux-x86-64.so.2": prog(soname="ld-linux-x86-64.so.2"),
    f"{MULTI}/libc.so.6": prog(interp=LD, needed=("ld-linux-x86-64.so.2",), soname="libc.so.6"),
    f"{MULTI}/libunused.so.1": prog(needed=("libc.so.6",)),
}

CASES = [
    pytest.param(
        {**GLIBC, "usr/bin/app": prog(interp=LD, needed=("liba.so.1", "libc.so.6")),
         f"{MULTI}/liba.so.1": Symlink("liba.so.1.0.0"), f"{MULTI}/liba.so.1.0.0": prog(needed=("libb.so",)),
         "usr/lib/libb.so": prog(needed=("libc.so.6",))},
        dict(entrypoint=["app"]),
        {"usr/bin/app", "lib64", "usr/lib64/ld-linux-x86-64.so.2", f"{MULTI}/ld-linux-x86-64.so.2",
         f"{MULTI}/liba.so.1", f"{MULTI}/liba.so.1.0.0", "usr/lib/libb.so", f"{MULTI}/libc.so.6"},
        {f"{MULTI}/libunused.so.1"}, [],
        id="an ELF program found in PATH keeps its interpreter through /lib64 and its library chain"),
    pytest.param(
        {**GLIBC, "opt/app/bin/app": prog(interp=LD, needed=("libx.so", "libc.so.6"), runpath=("$ORIGIN/../lib",)),
         "opt/app/lib/libx.so": prog(), "usr/lib/libx.so": prog()},
        dict(entrypoint=["/opt/app/bin/app"]),
        {"opt/app/bin/app", "opt/app/lib/libx.so"}, {"usr/lib/libx.so"}, [],
        id="a RUNPATH with $ORIGIN is searched before the default directories"),
    pytest.param(
        {**GLIBC, "usr/bin/app": prog(interp=LD, needed=("libq.so", "libc.so.6")),
         f"{MULTI}/libq.so": File(make_elf(bits=32, machine=3)), "usr/lib/libq.so": prog()},
        dict(entrypoint=["/usr/bin/app"]),
        {"usr/lib/libq.so"}, {f"{MULTI}/libq.so"}, [],
        id="a library of another class is skipped for the next candidate"),
    pytest.param(
        {**GLIBC, "usr/bin/app": prog(interp=LD, needed=("libz.so.1", "libc.so.6")),
         "etc/ld.so.conf": b"include /etc/ld.so.conf.d/*.conf\n", "etc/ld.so.conf.d/app.conf": b"/opt/libs\n",
         "opt/libs/libz.so.1": prog()},
        dict(entrypoint=["app"]),
        {"opt/libs/libz.so.1", "etc/ld.so.conf", "etc/ld.so.conf.d/app.conf"}, set(), [],
        id="ld.so.conf and the files it includes add search directories"),
    pytest.param(
        {**GLIBC, "usr/bin/app": prog(interp=LD, needed=("libgone.so", "libc.so.6"))},
        dict(entrypoint=["app"]),
        {"usr/bin/app"}, set(), ["needs libgone.so, which is in none of the loader's directories"],
        id="a library the image lacks becomes a note"),
    pytest.param(
        {"app/run.py": File(b"#!/usr/bin/env python3\nimport helper\n", mode=0o755),
         "app/helper.py": b"import ssl, req\n", "usr/bin/env": ELF, "usr/bin/python3": Symlink("python3.11"),
         "usr/bin/python3.11": ELF, "usr/lib/python3.11/os.py": b"", "usr/lib/python3.11/ssl.py": b"import _ssl\n",
         "usr/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so": prog(needed=("libssl.so.3",)),
         "usr/lib/python3.11/lib-dynload/_tkinter.cpython-311-x86_64-linux-gnu.so": prog(needed=("libtk.so",)),
         "usr/lib/python3.11/unused.py": b"", "usr/lib/x86_64-linux-gnu/libssl.so.3": prog(),
         "usr/lib/x86_64-linux-gnu/libtk.so": prog(), "usr/lib/python3/dist-packages/req/__init__.py": b"",
         "usr/bin/perl": ELF},
        dict(entrypoint=["/app/run.py"], workingdir="/app"),
        {"app/run.py", "app/helper.py", "usr/bin/env", "usr/bin/python3", "usr/bin/python3.11",
         "usr/lib/python3.11/os.py", "usr/lib/python3.11/ssl.py", "usr/lib/python3/dist-packages/req/__init__.py",
         "usr/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so",
         "usr/lib/x86_64-linux-gnu/libssl.so.3"},
        {"usr/bin/perl", "usr/lib/python3.11/unused.py", "usr/lib/x86_64-linux-gnu/libtk.so",
         "usr/lib/python3.11/lib-dynload/_tkinter.cpython-311-x86_64-linux-gnu.so"},
        ["python: static analysis cannot see"],
        id="a Python script run through env keeps python, the modules it imports and their native libraries"),
    pytest.param(
        {"bin": Symlink("usr/bin"), "usr/bin/sh": Symlink("dash"), "usr/bin/dash": ELF, "usr/bin/curl": ELF,
         "usr/bin/grep": ELF, "usr/bin/sed": ELF, "usr/bin/echo": ELF,
         "entry.sh": File(b"#!/bin/sh\n# sed is only mentioned here\nset -e\ncurl -s x | grep -q y && echo ok\n"
                          b". /etc/app.env\nexec \"$@\"\n", mode=0o755), "etc/app.env": b"A=1\n"},
        dict(entrypoint=["/entry.sh"], cmd=["server"]),
        {"entry.sh", "bin", "usr/bin/sh", "usr/bin/dash", "usr/bin/curl", "usr/bin/grep", "etc/app.env"},
        {"usr/bin/sed", "usr/bin/echo"}, ["may run commands built at run time"],
        id="a shell script keeps its shell, the commands it runs and the files it sources, not builtins"),
    pytest.param(
        {"sbin/tini": ELF, "usr/local/bin/server": ELF, "etc/server.yaml": b"port: 80\n", "etc/other.yaml": b""},
        dict(entrypoint=["/sbin/tini", "--"], cmd=["server", "--config=/etc/server.yaml"]),
        {"sbin/tini", "usr/local/bin/server", "etc/server.yaml"}, {"etc/other.yaml"}, [],
        id="a wrapper keeps the command it is given and files named in --opt=value"),
    pytest.param(
        {"usr/bin/java": Symlink("/etc/alternatives/java"),
         "etc/alternatives/java": Symlink("/usr/lib/jvm/jdk/bin/java"),
         "usr/lib/jvm/jdk/bin/java": prog(needed=("libjli.so",), runpath=("$ORIGIN/../lib",)),
         "usr/lib/jvm/jdk/lib/libjli.so": prog(), "usr/lib/jvm/jdk/lib/modules": 1000,
         "usr/lib/jvm/jdk/conf": Symlink("/etc/java-17"), "etc/java-17/security/java.security": b"x",
         "app/app.jar": 500, "app/lib/dep.jar": 200},
        dict(entrypoint=["java", "-jar", "/app/app.jar"]),
        {"usr/bin/java", "etc/alternatives/java", "usr/lib/jvm/jdk/bin/java", "usr/lib/jvm/jdk/lib/libjli.so",
         "app/app.jar", "app/lib/dep.jar", "usr/lib/jvm/jdk/lib/modules", "usr/lib/jvm/jdk/conf",
         "etc/java-17/security/java.security"}, set(), ["java: static analysis cannot see"],
        id="java -jar keeps the Java home, its symlinked conf and the application directory"),
    pytest.param(
        {"srv/run": ELF, "usr/bin/run": ELF},
        dict(entrypoint=["./run"], workingdir="/srv"),
        {"srv/run"}, {"usr/bin/run"}, [],
        id="a relative entrypoint is found from WorkingDir, not PATH"),
    pytest.param(
        {"usr/bin/a": Symlink("b"), "usr/bin/b": Symlink("a")},
        dict(entrypoint=["a"]),
        set(), {"usr/bin/a"}, ["the entrypoint 'a' is not an executable file in the image"],
        id="a symlink loop as entrypoint is a note, not a hang"),
    pytest.param(
        {"usr/bin/app": ELF},
        dict(),
        set(), {"usr/bin/app"}, ["no Entrypoint or Cmd"],
        id="an image without a command keeps nothing of its own"),
]


@pytest.mark.parametrize("files, config, kept, not_kept, notes", CASES)
def test_closure(tmp_path, files, config, kept, not_kept, notes):
    """The closure keeps what the entrypoint needs, leaves the rest, and notes what it cannot see."""
    closure = closure_of(tmp_path, files, **config)
    missing = {p for p in kept if not closure.covers(p)}
    assert not missing, (missing, closure.reasons, closure.notes)
    assert not {p for p in not_kept if closure.covers(p)}
    for note in notes:
        assert any(note in n for n in closure.notes + closure.blind_spots), (closure.notes, closure.blind_spots)


def test_interpreted_runtimes_keep_modules_with_reasons(tmp_path):
    """A Python entrypoint keeps the application directory whole and each imported module,
    saying why; the standard library is not kept whole."""
    files = dict(CASES[5].values[0])
    closure = closure_of(tmp_path, files, entrypoint=["/app/run.py"], workingdir="/app")
    assert "app" in closure.trees and "usr/lib/python3.11" not in closure.trees
    why = {r.path: r.why for r in closure.reasons}
    assert why["usr/lib/python3.11/ssl.py"] == "imported by /app/helper.py"
    assert why["usr/lib/python3.11/os.py"] == "the landmark of the interpreter's prefix (lib/pythonX.Y/os.py)"
    assert why["app/"] == "the application directory of the python program"
    assert closure.interpreted


def test_every_kept_file_has_a_reason(tmp_path):
    """Each file the closure keeps (not just a symlink on the way) is listed with why."""
    files, config = CASES[0].values[0], CASES[0].values[1]
    closure = closure_of(tmp_path, files, **config)
    reasons = {r.path for r in closure.reasons}
    links = {p for p in closure.paths if isinstance(files.get(p), Symlink)}
    assert closure.paths - links - {"bin", "lib", "lib64"} <= reasons


def test_libraries_are_read_in_one_pass_per_level(tmp_path):
    """File bytes are fetched in batches: a handful of layer passes, not one per file."""
    files, config = CASES[0].values[0], CASES[0].values[1]
    img = to_model(image(layer(files, auto_dirs=True), config={"config": {"Entrypoint": config["entrypoint"],
                                                                          "Env": ["PATH=/bin"]}}))
    fs = merge(img)
    contents = Contents(img, fs, tmp_path)
    entrypoint_closure(img, fs, contents)
    assert contents.layer_passes <= 6


@pytest.mark.parametrize("path, cwd, expected, links", [
    pytest.param("/bin/sh", "", "usr/bin/dash", ("bin", "usr/bin/sh"), id="a symlinked directory then a link"),
    pytest.param("../../../etc/x", "srv/app", "etc/x", (), id="dot-dot is clamped at the root"),
    pytest.param("/lib/abs", "", "etc/x", ("lib", "usr/lib/abs"), id="an absolute target starts at the image root"),
    pytest.param("/usr/bin/none", "", None, (), id="a missing path resolves to nothing"),
])
def test_resolve_follows_symlinks_inside_the_image(path, cwd, expected, links):
    """Lookup follows symlink chains as the kernel would inside the container, never on the host."""
    files = {"bin": Symlink("usr/bin"), "lib": Symlink("usr/lib"), "usr/bin/sh": Symlink("dash"),
             "usr/bin/dash": ELF, "etc/x": b"x", "usr/lib/abs": Symlink("/etc/x"), "srv/app": Dir()}
    fs = merge(to_model(image(layer(files, auto_dirs=True))))
    found = resolve(fs, path, cwd)
    assert (found.path if found else None) == expected
    if found:
        assert found.links == links


def test_find_command_wants_an_executable_file():
    """PATH search skips directories and files without an execute bit, as execvp does."""
    fs = merge(to_model(image(layer({"a/tool": Dir(), "b/tool": File(b"x", mode=0o644),
                                     "c/tool": File(b"x", mode=0o755)}, auto_dirs=True))))
    assert find_command(fs, "tool", {"PATH": "/a:/b:/c"})[0] == "c/tool"
    assert find_command(fs, "tool", {"PATH": "/a:/b"}) is None
