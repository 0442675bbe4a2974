"""Slimming plans: what prune and distroless keep and drop, the distroless base set, the nonroot
user, --keep/--drop globs, and the bytes accounted by category (nothing is written here)."""

from __future__ import annotations

import pytest
from test_elf import make_elf

from slimmer.errors import SlimError
from slimmer.rewriter.plan import Globs
from slimmer.rewriter.slim import SlimOptions, plan_slim
from slimmer.rewriter.users import DEFAULT_PASSWD, PASSWD_LINE, config_user, with_nonroot

from builders import Dir, File, Symlink, image, layer, to_model

ELF = File(make_elf(elf_type=2), mode=0o755)
SYSTEM = {
    "app/server": ELF,
    "usr/share/doc/pkg/README": 4_000, "usr/share/doc/pkg/copyright": 300, "usr/share/man/man1/x.1.gz": 2_000,
    "usr/share/locale/de/LC_MESSAGES/x.mo": 1_500, "var/lib/apt/lists/deb_Packages": 50_000,
    "var/cache/apt/archives/x.deb": 60_000, "usr/include/x.h": 700, "usr/lib/x86_64-linux-gnu/libx.a": 9_000,
    "usr/lib/go-1.19/bin/go": File(80_000, mode=0o755), "usr/bin/go": Symlink("../lib/go-1.19/bin/go"),
    "usr/bin/broken": Symlink("/nowhere"), "root/.cache/go-build/00/abc-d": 30_000, "src/.git/HEAD": 40,
    "usr/bin/bash": ELF, "var/lib/dpkg/status": 800,
    "etc/ssl/certs/ca-certificates.crt": 200, "etc/ssl/cert.pem": Symlink("certs/ca-certificates.crt"),
    "usr/share/zoneinfo/UTC": 100, "usr/share/zoneinfo/Europe/Paris": 200, "etc/localtime": Symlink(
        "/usr/share/zoneinfo/Europe/Paris"), "usr/lib/os-release": b"ID=debian\n",
    "etc/os-release": Symlink("../usr/lib/os-release"), "etc/passwd": b"root:x:0:0:root:/root:/bin/bash\n",
    "etc/group": b"root:x:0:\n", "tmp/leftover": 10, "etc/hostname": b"x\n",
}


def plan(files=None, mode="prune", entrypoint=("/app/server",), **options):
    spec = image(layer(SYSTEM if files is None else files, auto_dirs=True), entrypoint=list(entrypoint))
    return plan_slim(to_model(spec), SlimOptions(mode=mode, **options))


@pytest.mark.parametrize("path, kept", [
    pytest.param("usr/share/doc/pkg/README", False, id="docs go"),
    pytest.param("usr/share/doc/pkg/copyright", True, id="licences stay"),
    pytest.param("usr/share/man/man1/x.1.gz", False, id="man pages go"),
    pytest.param("usr/share/locale/de/LC_MESSAGES/x.mo", False, id="translations go"),
    pytest.param("var/lib/apt/lists/deb_Packages", False, id="package lists go"),
    pytest.param("var/cache/apt/archives/x.deb", False, id="the apt cache goes"),
    pytest.param("usr/include/x.h", False, id="headers go"),
    pytest.param("usr/lib/x86_64-linux-gnu/libx.a", False, id="static libraries go"),
    pytest.param("usr/lib/go-1.19/bin/go", False, id="an unused toolchain goes"),
    pytest.param("usr/bin/go", False, id="a symlink into a dropped toolchain goes"),
    pytest.param("usr/bin/broken", True, id="a symlink that was already dangling stays"),
    pytest.param("root/.cache/go-build/00/abc-d", False, id="the Go build cache goes"),
    pytest.param("src/.git/HEAD", False, id="VCS data goes"),
    pytest.param("usr/bin/bash", True, id="programs stay"),
    pytest.param("var/lib/dpkg/status", True, id="the package database stays"),
    pytest.param("app/server", True, id="the entrypoint stays"),
    pytest.param("tmp", True, id="/tmp itself stays"),
])
def test_prune_drops_what_the_rules_call_removable(path, kept):
    """Prune keeps everything but removable categories and build-only files nothing runs."""
    assert (path in plan().plan.keep) is kept


def test_prune_keeps_build_files_when_the_entrypoint_runs_a_toolchain():
    """An entrypoint that is a compiler keeps the toolchain, headers and static libraries."""
    result = plan(entrypoint=("go", "run", "."))
    assert {"usr/lib/go-1.19/bin/go", "usr/bin/go", "usr/include/x.h", "usr/lib/x86_64-linux-gnu/libx.a"} <= \
        result.plan.keep
    assert "usr/share/doc/pkg/README" not in result.plan.keep
    assert any("runs a toolchain" in n for n in result.plan.notes)


@pytest.mark.parametrize("tzdata, zone", [pytest.param(True, True, id="with tzdata"),
                                          pytest.param(False, False, id="with --no-tzdata")])
def test_distroless_keeps_the_closure_and_the_base_set(tzdata, zone):
    """Distroless keeps the entrypoint, CA bundle, os-release, nsswitch, passwd/group with
    nonroot, /tmp 1777 and (unless --no-tzdata) the zone database; nothing else."""
    result = plan(mode="distroless", tzdata=tzdata)
    keep = result.plan.keep
    assert {"app/server", "etc/ssl/certs/ca-certificates.crt", "etc/ssl/cert.pem", "etc/os-release",
            "usr/lib/os-release"} <= keep
    assert ({"usr/share/zoneinfo/UTC", "usr/share/zoneinfo/Europe/Paris", "etc/localtime"} <= keep) is zone
    assert not keep & {"usr/bin/bash", "var/lib/dpkg/status", "etc/hostname", "tmp/leftover", "usr/bin/broken"}
    synthetic = {s.path: s for s in result.plan.synthetic}
    assert synthetic["tmp"].mode == 0o1777
    assert PASSWD_LINE in synthetic["etc/passwd"].data.decode()
    assert synthetic["etc/passwd"].data.decode().startswith("root:x:0:0:root:/root:/bin/bash\n")
    assert "nonroot:x:65532:" in synthetic["etc/group"].data.decode()
    assert "hosts:" in synthetic["etc/nsswitch.conf"].data.decode()
    assert synthetic["home/nonroot"].uid == 65532


def test_distroless_of_an_image_without_accounts_writes_them():
    """An image with no /etc/passwd gets distroless's root, nobody and nonroot."""
    result = plan({"app/server": ELF}, mode="distroless")
    synthetic = {s.path: s.data for s in result.plan.synthetic}
    assert synthetic["etc/passwd"].decode() == DEFAULT_PASSWD
    assert any("no CA certificate bundle" in n for n in result.plan.notes)


def test_an_existing_nonroot_user_is_left_alone():
    """passwd and group that have nonroot already are kept as they are, not rewritten."""
    files = {"app/server": ELF, "etc/passwd": b"nonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n",
             "etc/group": b"nonroot:x:65532:\n"}
    result = plan(files, mode="distroless")
    assert {"etc/passwd", "etc/group"} <= result.plan.keep
    assert not {s.path for s in result.plan.synthetic} & {"etc/passwd", "etc/group"}


def test_distroless_drops_removable_files_inside_kept_trees():
    """A runtime tree kept whole still loses its tests and caches."""
    files = {"usr/bin/python3.11": ELF, "usr/lib/python3.11/os.py": 100, "usr/lib/python3.11/test/test_os.py": 9_000,
             "usr/lib/python3.11/sitecustomize.py": b"",
             "usr/lib/python3.11/__pycache__/sitecustomize.cpython-311.pyc": 300, "app/main.py": b"print(1)\n"}
    result = plan(files, mode="distroless", entrypoint=("python3.11", "/app/main.py"))
    assert {"usr/lib/python3.11/os.py", "usr/lib/python3.11/__pycache__/sitecustomize.cpython-311.pyc",
            "app/main.py"} <= result.plan.keep
    assert "usr/lib/python3.11/test/test_os.py" not in result.plan.keep


@pytest.mark.parametrize("mode, keep, drop, path, kept", [
    pytest.param("prune", ("/usr/share/doc/**",), (), "usr/share/doc/pkg/README", True, id="--keep beats a rule"),
    pytest.param("prune", (), ("/usr/bin/bash",), "usr/bin/bash", False, id="--drop removes a kept file"),
    pytest.param("prune", ("/usr/bin",), ("*",), "usr/bin/bash", True, id="--keep beats --drop"),
    pytest.param("distroless", ("/usr/bin/bash",), (), "usr/bin/bash", True, id="--keep adds to distroless"),
    pytest.param("distroless", (), ("/usr/share/zoneinfo",), "usr/share/zoneinfo/UTC", False,
                 id="--drop of a directory takes its contents"),
])
def test_keep_and_drop_globs(mode, keep, drop, path, kept):
    """--keep and --drop change what the mode decides, --keep winning."""
    assert (path in plan(mode=mode, keep=keep, drop=drop).plan.keep) is kept


@pytest.mark.parametrize("pattern, path, matches", [
    pytest.param("/usr/share/doc/**", "usr/share/doc/a/b", True, id="** spans segments"),
    pytest.param("/usr/*/doc", "usr/share/doc/a", True, id="a directory match covers its contents"),
    pytest.param("/usr/*/doc", "usr/share/x/doc", False, id="* stays in one segment"),
    pytest.param("*.pyc", "app/x/y.pyc", True, id="a name without / matches at any depth"),
    pytest.param("/app", "application", False, id="a prefix of a name is not a match"),
    pytest.param("app/data", "app/data/x", True, id="a relative pattern with / is anchored at the root"),
])
def test_glob_semantics(pattern, path, matches):
    """User globs: absolute paths, * in a segment, ** across, bare names anywhere, subtrees."""
    assert Globs(keep=(pattern,)).kept(path) is matches


@pytest.mark.parametrize("mode", ["prune", "distroless"])
def test_bytes_removed_add_up_by_category(mode):
    """Removed bytes by category sum to the total removed, and before - removed + added == after."""
    result = plan(mode=mode)
    assert sum(c.bytes for c in result.by_category) == result.removed_bytes
    assert result.before_bytes - result.removed_bytes + result.added_bytes == result.after_bytes
    by = {c.category: c.bytes for c in result.by_category}
    assert by["cache"] >= 60_000 + 50_000 + 30_000
    assert by["toolchain"] >= 80_000


@pytest.mark.parametrize("user, current, expected", [
    pytest.param(None, "app", "app", id="not asked keeps the image's user"),
    pytest.param("nonroot", "", "65532:65532", id="nonroot is 65532"),
    pytest.param("1000", "", "1000", id="a uid"),
    pytest.param("1000:1000", "", "1000:1000", id="uid:gid"),
])
def test_config_user(user, current, expected):
    """--user sets the config User: nonroot, a uid or uid:gid."""
    assert config_user(user, current) == expected


@pytest.mark.parametrize("user", ["root", "-1", "1:2:3", "99999999999"])
def test_a_bad_user_is_refused(user):
    """Anything but nonroot, UID or UID:GID is a SlimError naming the value."""
    with pytest.raises(SlimError, match="--user"):
        config_user(user, "")


def test_nonroot_is_appended_once():
    """with_nonroot adds the line when missing (fixing a missing final newline) and only then."""
    assert with_nonroot("root:x:0:0::/root:/bin/sh", "L", "D") == "root:x:0:0::/root:/bin/sh\nL\n"
    assert with_nonroot("a:x:65532:1::/:/bin/sh\n", "L", "D") == "a:x:65532:1::/:/bin/sh\n"
    assert with_nonroot(None, "L", "D") == "D"


@pytest.mark.parametrize("mode, shown", [pytest.param("distroless", True, id="distroless says"),
                                         pytest.param("prune", False, id="prune, which keeps the rest, does not")])
def test_blind_spots_are_noted_where_they_matter(mode, shown):
    """What static analysis cannot see is a note in distroless mode only."""
    files = {"usr/bin/python3.11": ELF, "usr/lib/python3.11/os.py": 100, "app/main.py": b"print(1)\n"}
    notes = plan(files, mode=mode, entrypoint=("python3.11", "/app/main.py")).plan.notes
    assert any("static analysis cannot see" in n for n in notes) is shown


def test_an_unknown_mode_is_refused():
    """A mode other than prune or distroless is a SlimError."""
    with pytest.raises(SlimError, match="unknown mode"):
        plan(mode="aggressive")


def test_dirs_only_implied_are_kept_implied():
    """A kept file whose parent directories have no entries of their own needs none."""
    files = {"opt/tool/bin/tool": ELF, "opt/tool": Dir(mode=0o700)}
    result = plan(files, mode="distroless", entrypoint=("/opt/tool/bin/tool",))
    assert {"opt/tool", "opt/tool/bin/tool"} <= result.plan.keep


LOCALE = {"usr/lib/locale/C.utf8/LC_CTYPE": 3_000, "usr/lib/locale/C.utf8/LC_MESSAGES/SYS_LC_MESSAGES": 50,
          "usr/lib/locale/C.utf8/LC_TIME": 300}


@pytest.mark.parametrize("env, kept", [
    pytest.param(["LANG=C.UTF-8"], True, id="LANG=C.UTF-8 finds C.utf8"),
    pytest.param(["LC_ALL=C.utf8"], True, id="LC_ALL spelled as the directory"),
    pytest.param(["LANG=C"], False, id="C is built in"),
    pytest.param([], False, id="no locale set"),
])
def test_distroless_keeps_the_locale_the_environment_selects(env, kept):
    """As gcr.io/distroless/base holds C.utf8: the locale LANG or LC_* names stays (glibc's
    spelling of the codeset found), and none stays when the environment names none."""
    spec = image(layer({**SYSTEM, **LOCALE}, auto_dirs=True), entrypoint=["/app/server"], env=env)
    keep = plan_slim(to_model(spec), SlimOptions(mode="distroless")).plan.keep
    assert (set(LOCALE) <= keep) is kept


def test_a_locale_the_image_lacks_is_named_and_an_archive_serves():
    """A selected locale the image has no directory for comes from locale-archive when there
    is one; with neither, a note says so."""
    files = {**SYSTEM, "usr/lib/locale/locale-archive": 9_000}
    spec = image(layer(files, auto_dirs=True), entrypoint=["/app/server"], env=["LANG=de_DE.UTF-8"])
    assert "usr/lib/locale/locale-archive" in plan_slim(to_model(spec), SlimOptions(mode="distroless")).plan.keep
    spec = image(layer(SYSTEM, auto_dirs=True), entrypoint=["/app/server"], env=["LANG=de_DE.UTF-8"])
    notes = plan_slim(to_model(spec), SlimOptions(mode="distroless")).plan.notes
    assert any("selects the locale de_DE.UTF-8, which the image does not have" in n for n in notes)
