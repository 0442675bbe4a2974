"""The entrypoint closure: every file an image's Entrypoint/Cmd needs, found statically.

Starting from the command line (Entrypoint + Cmd, resolved through the image's ``PATH`` and
``WorkingDir``), it follows symlink chains, ELF interpreters (PT_INTERP) and shared objects
(DT_NEEDED, searched as ``slimmer.rewriter.loader`` says), script interpreters (``#!``), the
commands a shell script appears to run, and files named on the command line. Interpreted
runtimes (``slimmer.rewriter.runtimes``) keep their runtime tree and the application
directory whole. Everything kept carries a reason; what static analysis cannot see becomes a
note, so the user knows where ``--keep`` is needed.

What files hold comes from ``Contents``: the facts the scan pass gathered (ELF loader facts,
``#!`` lines, texts, imports), so no layer is read again but for the rare file the scan could
not learn from in one pass (fetched in one batch per level of the dependency graph). Python and
Node.js programs are followed through their imports (``slimmer.rewriter.python``,
``slimmer.rewriter.node``); Java keeps its runtime tree without what only a JDK needs. Imports
the model, ``slimmer.layers`` and rewriter modules only.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from slimmer.errors import ElfError
from slimmer.layers import MergedFS
from slimmer.model import DIR, FILE, HARDLINK, SYMLINK, Image, command_line, runtime_config
from slimmer.rewriter import loader, shell
from slimmer.rewriter.contents import Contents
from slimmer.rewriter.elf import ElfInfo
from slimmer.rewriter.lookup import CommandFinder, Found, model_path, resolve
from slimmer.rewriter.node import NodeClosure
from slimmer.rewriter.python import PythonClosure
from slimmer.rewriter.runtimes import runtime_of

# Directories never kept whole as an "application directory": they hold the whole system.
SYSTEM_DIRS = frozenset({
    "", "bin", "sbin", "usr", "usr/bin", "usr/sbin", "usr/local", "usr/local/bin", "usr/local/sbin", "usr/lib",
    "usr/local/lib", "usr/lib64", "lib", "lib64", "lib32", "etc", "var", "var/lib", "usr/share", "opt", "home",
    "tmp", "root", "srv", "run", "proc", "sys", "dev", "mnt", "media",
})


@dataclass(frozen=True)
class Reason:
    """One thing the closure keeps and why (``path`` is a model path; a tree ends in ``/``)."""

    path: str
    why: str


@dataclass(frozen=True)
class Closure:
    """What the entrypoint needs: single paths (files, and symlinks on the way to them),
    directories kept whole, the reasons, notes on what was looked for and not found, and the
    blind spots of static analysis (what only --keep can add)."""

    paths: frozenset[str]
    trees: frozenset[str]
    reasons: tuple[Reason, ...]
    notes: tuple[str, ...]
    argv: tuple[str, ...]
    interpreted: bool = False  # an interpreter (python, node, java, a shell) runs the program
    blind_spots: tuple[str, ...] = ()
    left_out: tuple[Reason, ...] = ()  # parts of kept trees left out on purpose (a JDK's compilers)

    def covers(self, path: str) -> bool:
        """Return whether ``path`` is in the closure (itself or below a kept tree, and not
        in a part left out)."""
        if path in self.paths:
            return True
        return in_trees(path, self.trees, [r.path for r in self.left_out])


def in_trees(path: str, trees: AbstractSet[str], left: list[str]) -> bool:
    """Return whether ``path`` is a kept tree or lies below one (outside the parts of it left
    out): its ancestors are looked up in ``trees``, never every tree compared with it."""
    at = path
    while at:
        if at in trees and not (left and inside_left(path, at, left)):
            return True
        at = at.rpartition("/")[0]
    return False


def tree_holding(path: str, trees: AbstractSet[str]) -> str | None:
    """Return the kept tree strictly above ``path``, if one (the deepest)."""
    at = path.rpartition("/")[0]
    while at:
        if at in trees:
            return at
        at = at.rpartition("/")[0]
    return None


def inside_left(path: str, tree: str, left: list[str]) -> bool:
    """Return whether ``path`` lies in a part of kept ``tree`` that was left out (a part
    below the tree; a tree kept inside a left-out part is a tree of its own)."""
    return any(part.startswith(tree + "/") and (path == part or path.startswith(part + "/")) for part in left)


def image_env(image: Image) -> dict[str, str]:
    """Return the image's ``Env`` as a dict."""
    env: dict[str, str] = {}
    for item in runtime_config(image).get("Env") or []:
        name, sep, value = str(item).partition("=")
        if sep:
            env[name] = value
    return env


@dataclass
class _Task:
    kind: str  # "program" (look inside a file) or "needed" (choose among library candidates)
    path: str
    by: str = ""
    name: str = ""
    info: ElfInfo | None = None
    candidates: list[tuple[str, Found]] = field(default_factory=list)
    rpath: list[str] = field(default_factory=list)


class _Walker:
    def __init__(self, image: Image, fs: MergedFS, contents: Contents):
        self.image, self.fs, self.contents = image, fs, contents
        self.env = image_env(image)
        self.cwd = model_path(str(runtime_config(image).get("WorkingDir") or "/"))
        self.paths: set[str] = set()
        self.trees: set[str] = set()
        self.reasons: list[Reason] = []
        self.notes: list[str] = []
        self.blind_spots: list[str] = []
        self._said: set[str] = set()  # notes and blind spots recorded, for saying each once
        self.finder = CommandFinder(fs, self.env, self.cwd)
        self.queue: list[_Task] = []
        self.seen_programs: set[str] = set()
        self.elf: dict[str, ElfInfo | None] = {}
        self.interpreted = False
        self._conf_dirs: list[str] | None = None
        self._children: dict[str, frozenset[str]] = {}
        self.pythons: dict[str, PythonClosure] = {}
        self.nodes: dict[str, NodeClosure] = {}
        self.programs: list[tuple[object, str, str]] = []  # (closure, how, what) to follow
        self.left_out: list[Reason] = []
        self._tree_names: dict[str, dict[str, str]] = {}

    # -- recording ---------------------------------------------------------------------------

    def keep(self, found: Found, why: str) -> None:
        """Keep a resolved path and the symlinks on the way to it."""
        for link in found.links:
            self.paths.add(link)
        if found.path:
            if found.path not in self.paths:
                self.reasons.append(Reason(found.path, why))
            self.paths.add(found.path)

    def keep_tree(self, path: str, why: str) -> None:
        """Keep a directory whole (never a system directory such as /usr)."""
        found = resolve(self.fs, "/" + path)
        if found is None:
            return
        for link in found.links:
            self.paths.add(link)
        if not found.is_dir:
            self.keep(found, why)
            return
        if found.path in SYSTEM_DIRS or in_trees(found.path, self.trees, [r.path for r in self.left_out]):
            return
        self.trees.add(found.path)
        self.reasons.append(Reason(found.path + "/", why))

    def note(self, text: str) -> None:
        """Record something the closure looked for and did not find (once)."""
        if text not in self._said:
            self._said.add(text)
            self.notes.append(text)

    def blind(self, text: str) -> None:
        """Record what static analysis cannot see (distroless needs --keep for it), once."""
        if text not in self._said:
            self._said.add(text)
            self.blind_spots.append(text)

    def children(self, path: str) -> frozenset[str]:
        """Return the names in directory ``path`` of the merged filesystem (cached)."""
        names = self._children.get(path)
        if names is None:
            names = self._children[path] = frozenset(self.fs.children(path))
        return names

    def tree_files(self, path: str):
        """Yield (path, version) of every file below directory ``path``."""
        for p, version in _walk_tree(self.fs, path):
            if version.entry.kind != DIR:
                yield p, version

    # -- the command line --------------------------------------------------------------------

    def start(self, argv: list[str]) -> None:
        if not argv:
            self.note("the image has no Entrypoint or Cmd: nothing to start, only the base set is kept")
            return
        program = self.program(argv[0], "the entrypoint")
        if program is None:
            self.note(f"the entrypoint {argv[0]!r} is not an executable file in the image "
                      f"(PATH={self.env.get('PATH', '(default)')}); add it with --keep if it comes from a volume")
            return
        self.arguments(program, argv)

    def program(self, name: str, why: str) -> tuple[str, Found] | None:
        """Find command ``name`` as execvp would (from WorkingDir, through PATH); keep it and
        queue a look inside."""
        hit = self.finder.find(name)
        if hit is None:
            return None
        self.keep(hit[1], why)
        self.look(hit[1].path)
        return hit

    def look(self, path: str, by: str = "") -> None:
        """Queue a look inside ``path`` (once)."""
        if path not in self.seen_programs:
            self.seen_programs.add(path)
            self.queue.append(_Task("program", path, by=by))

    def arguments(self, program: tuple[str, Found], argv: list[str]) -> None:
        """Keep what the arguments of the entrypoint name: files and directories of the image,
        the script an interpreter runs, and commands handed to a wrapper (``tini -- app``,
        ``docker-entrypoint.sh postgres``)."""
        called, found = program
        runtime = runtime_of(called, found.path)
        wrapper = shell.is_shell(called) or shell.is_shell(found.path)
        if runtime:
            self.runtime(called, found.path, runtime)
        script_seen = False
        args = argv[1:]
        for i, arg in enumerate(args):
            if wrapper and arg == "-c" and i + 1 < len(args):
                self.interpreted = True
                self.script_text(args[i + 1], f"the command string of {argv[0]}")
                break
            for value in _path_like(arg):
                hit = resolve(self.fs, value, self.cwd)
                if hit is None:
                    continue
                if hit.is_dir:
                    self.keep_tree(hit.path, f"a directory named on the command line ({arg})")
                elif not script_seen and (runtime or wrapper) and not arg.startswith("-") and \
                        not (runtime and runtime.name == "java" and i and args[i - 1] != "-jar"):
                    script_seen = True
                    self.interpreted = True
                    kind = runtime.name if runtime else "shell"
                    self.keep(hit, f"the {kind} program run by /{found.path}")
                    self.seen_programs.discard(hit.path)  # look again: now known as a script
                    self.look(hit.path, "script-of:" + kind)
                    if runtime:
                        self.app_dir(posixpath.dirname(hit.path), runtime.name)
                        self.program_of(runtime.name, called, found.path, "script", hit.path, args[:i])
                else:
                    self.keep(hit, f"a file named on the command line ({arg})")
            if not arg.startswith("-") and "/" not in arg and not runtime:
                self.program(arg, f"a command named on the command line ({arg})")
        if runtime and runtime.name == "python":
            for flag, how in (("-m", "module"), ("-c", "code")):
                if flag in args and args.index(flag) + 1 < len(args):
                    if flag == "-m":
                        self.app_dir(self.cwd, runtime.name)
                    self.program_of("python", called, found.path, how, args[args.index(flag) + 1],
                                    args[:args.index(flag)])
                    break

    def program_of(self, runtime: str, called: str, real: str, how: str, what: str,
                   options: Sequence[str] = ()) -> None:
        """Queue a program for the import closure of its interpreter (run with ``options``)."""
        closure: object
        if runtime == "python":
            if real not in self.pythons:
                self.pythons[real] = PythonClosure(self, called, real)
            closure = self.pythons[real]
            self.pythons[real].options(options)
        elif runtime == "node":
            if real not in self.nodes:
                self.nodes[real] = NodeClosure(self, called, real)
            closure = self.nodes[real]
        else:
            return
        self.programs.append((closure, how, what))

    def follow_programs(self) -> None:
        """Follow the imports of the interpreted programs found (then their ELF needs)."""
        while self.programs:
            closure, how, what = self.programs.pop(0)
            if how == "script":
                closure.run_script(what)  # type: ignore[attr-defined]
            elif how == "module":
                closure.run_module(what)  # type: ignore[attr-defined]
            else:
                closure.run_code(what)  # type: ignore[attr-defined]
        for py in self.pythons.values():
            py.finish()
            if py.computed:
                shown = ", ".join(py.computed[:3]) + (f" and {len(py.computed) - 3} more" if len(py.computed) > 3
                                                      else "")
                self.blind(f"python: {shown} import modules by computed names, which static analysis cannot "
                           f"see; add --keep for them, or use --probe")
        for node in self.nodes.values():
            if node.computed:
                shown = ", ".join(node.computed[:3]) + (f" and {len(node.computed) - 3} more"
                                                        if len(node.computed) > 3 else "")
                self.blind(f"node: {shown} require modules by computed names; their packages' declared "
                           f"dependencies were kept; add --keep for others, or use --probe")

    def app_dir(self, path: str, runtime: str) -> None:
        if path in SYSTEM_DIRS:
            self.note(f"the {runtime} program lives in /{path}, a system directory: it was not kept whole; "
                      f"add --keep for the files it loads")
            return
        self.keep_tree(path, f"the application directory of the {runtime} program")
        if runtime == "node":
            # packages are kept as the require closure reaches them, not with the app
            for modules in [posixpath.join(path, "node_modules")]:
                if self.fs.get(modules) is not None or self.fs.children(modules):
                    self.left_out.append(Reason(modules, "npm packages no required file reaches (devDependencies "
                                                         "among them)"))

    def script_text(self, text: str, what: str) -> None:
        """Keep the commands a shell script runs and the files it sources (relative names are
        relative to the process's WorkingDir, as the kernel resolves them)."""
        for word in shell.commands(text):
            hit = self.program(word, f"run by {what} (a static reading of the script)")
            if hit is None and "/" in word:
                self.note(f"{what} runs {word!r}, which is not in the image")
        for name in shell.sourced(text):
            read = resolve(self.fs, name, self.cwd)
            if read is not None and read.is_file:
                self.keep(read, f"read by {what} with '.'")
                self.look(read.path, "script-of:shell")
        if shell.runs_computed_commands(text):
            self.blind(f"{what} may run commands built at run time, which static analysis cannot see")

    # -- rounds ------------------------------------------------------------------------------

    def run(self) -> None:
        """Work the queue in rounds: fetch every file a round needs in one batch, then look."""
        while self.queue:
            batch, self.queue = self.queue, []
            wanted = [t.path for t in batch if t.kind == "program"]
            wanted += [c.path for t in batch if t.kind == "needed" for _, c in t.candidates]
            self.contents.fetch(wanted)  # reads again only what the scan could not learn
            for task in batch:
                if task.kind == "program":
                    self.look_inside(task)
                else:
                    self.choose_library(task)

    def info_of(self, path: str) -> ElfInfo | None:
        if path not in self.elf:
            info = None
            try:
                info = self.contents.elf(path)
            except ElfError as err:
                self.note(f"{err}; its libraries could not be followed")
            self.elf[path] = info
        return self.elf[path]

    def look_inside(self, task: _Task) -> None:
        """Follow a program: its ELF needs, or its #! interpreter and what a script runs."""
        path = task.path
        if not self.contents.has(path):
            return
        info = self.info_of(path)
        if info is not None:
            self.follow_elf(path, info, [])
            return
        words = shell.shebang(self.contents.head(path))
        if words:
            self.interpreted = True
            interp = words[0]
            hit = self.program(interp, f"the interpreter of /{path} (#!)")
            if hit is None:
                self.note(f"/{path} names the interpreter {interp!r} (#!), which is not in the image")
                return
            called = hit[0]
            if posixpath.basename(called) == "env":
                name = shell.env_command(words[1:])
                hit = self.program(name, f"the interpreter of /{path} (#!{' '.join(words)})") if name else None
                if hit is None:
                    self.note(f"/{path} runs {name!r} through env, which is not in the image PATH")
                    return
                called = hit[0]
            runtime = runtime_of(called, hit[1].path)
            if runtime:
                self.runtime(called, hit[1].path, runtime)
                self.app_dir(posixpath.dirname(path), runtime.name)
                self.program_of(runtime.name, called, hit[1].path, "script", path, words[1:])
            elif shell.is_shell(called) or shell.is_shell(hit[1].path):
                self.script_text(self.contents.text(path), "/" + path)
            return
        if task.by == "script-of:shell":
            self.script_text(self.contents.text(path), "/" + path)

    def runtime(self, called: str, real: str, runtime) -> None:
        """Keep an interpreter's runtime trees (Python and Node.js have none: their import
        closures say what they load), leave out what only builds programs, and say what static
        analysis cannot see."""
        self.interpreted = True
        for tree in runtime.trees(self.fs, called, real, self.env):
            self.keep_tree(tree, f"the runtime tree of {runtime.name} (/{real})")
            for part, why in runtime.left_out(self.fs, tree):
                if not any(r.path == part for r in self.left_out):
                    self.left_out.append(Reason(part, why))
        self.blind(f"{runtime.name}: static analysis cannot see {runtime.blind_spot}; add --keep for them")

    # -- ELF ---------------------------------------------------------------------------------

    def follow_elf(self, path: str, info: ElfInfo, inherited_rpath: list[str]) -> None:
        """Keep an ELF object's interpreter; queue the choice of each library it needs."""
        if info.interpreter:
            hit = resolve(self.fs, info.interpreter)
            if hit is None or not hit.is_file:
                self.note(f"/{path} needs the ELF interpreter {info.interpreter}, which is not in the image")
            else:
                self.keep(hit, f"the ELF interpreter of /{path}")
        if not info.needed:
            return
        dirs = loader.search_dirs("/" + posixpath.dirname(path), info, inherited_rpath,
                                  [d for d in self.env.get("LD_LIBRARY_PATH", "").split(":") if d],
                                  self.conf_dirs())
        rpath = inherited_rpath if info.runpath else inherited_rpath + list(info.rpath)
        for name in info.needed:
            candidates: list[tuple[str, Found]] = []
            paths = [name] if "/" in name else [posixpath.join(d, name) for d in dirs]
            for p in paths:
                hit = resolve(self.fs, p, posixpath.dirname(path))
                if hit is not None and hit.is_file and all(hit.path != c.path for _, c in candidates):
                    candidates.append((p, hit))
            if not candidates:
                loaded = self._in_own_tree(path, name)
                if loaded is not None:
                    # a runtime that dlopens its core library by path first (the JVM's
                    # lib/server/libjvm.so) satisfies later DT_NEEDED names by SONAME
                    self.keep(loaded, f"{name}, needed by /{path} and loaded by its runtime from its own tree")
                    continue
                self.note(f"/{path} needs {name}, which is in none of the loader's directories: "
                          f"{', '.join(dirs[:6])}{', ...' if len(dirs) > 6 else ''}")
                continue
            self.queue.append(_Task("needed", path, by=path, name=name, info=info, candidates=candidates,
                                    rpath=rpath))

    def _in_own_tree(self, path: str, name: str) -> Found | None:
        """Return the file named ``name`` inside the kept tree that holds ``path``, if one."""
        tree = tree_holding(path, self.trees)
        if tree is None or "/" in name:
            return None
        index = self._tree_names.get(tree)
        if index is None:
            index = self._tree_names[tree] = {}
            for p, version in _walk_tree(self.fs, tree):
                if version.entry.kind in (FILE, HARDLINK):
                    index.setdefault(posixpath.basename(p), p)
        hit = index.get(name)
        return resolve(self.fs, "/" + hit) if hit else None

    def choose_library(self, task: _Task) -> None:
        """Keep the first candidate of the object's class and machine, as ld.so picks it."""
        for _called, found in task.candidates:
            lib = self.info_of(found.path)
            if lib is None or task.info is None or not task.info.matches(lib):
                continue
            self.keep(found, f"{task.name}, needed by /{task.by}")
            if found.path not in self.seen_programs:
                self.seen_programs.add(found.path)
                self.follow_elf(found.path, lib, task.rpath)
            return
        self.note(f"/{task.by} needs {task.name}: no candidate in the image is an ELF object of the same "
                  f"class and machine")

    def conf_dirs(self) -> list[str]:
        """Return the directories of /etc/ld.so.conf and its includes (and musl's path files)."""
        if self._conf_dirs is not None:
            return self._conf_dirs
        dirs: list[str] = []
        pending = ["etc/ld.so.conf"] + [f"etc/{c}" for c in self.fs.children("etc")
                                        if c.startswith("ld-musl-") and c.endswith(".path")]
        seen: set[str] = set()
        while pending:
            hits = [(p, resolve(self.fs, "/" + p)) for p in pending if p not in seen]
            seen.update(pending)
            found = [(p, f) for p, f in hits if f is not None and f.is_file]
            pending = []
            for p, f in found:
                self.keep(f, "the loader's configuration")
                text = self.contents.text(f.path, 1 << 16)
                if p.endswith(".path"):
                    dirs += [d for d in text.replace("\n", ":").split(":") if d.startswith("/")]
                    continue
                more, includes = loader.parse_ld_so_conf(text)
                dirs += more
                for pattern in includes:
                    parent = posixpath.dirname(pattern if pattern.startswith("/") else
                                               posixpath.join("/" + posixpath.dirname(p), pattern))
                    children = self.fs.children(parent.lstrip("/"))
                    pending += [m.lstrip("/") for m in loader.include_matches(pattern, "/" + posixpath.dirname(p),
                                                                              children)]
        self._conf_dirs = dirs
        return dirs

    # -- trees -------------------------------------------------------------------------------

    def expand_trees(self) -> None:
        """Follow what kept trees hold: symlinks out of them, and the libraries of their ELF
        files (native modules of an interpreter, the JVM's libraries)."""
        done_links: set[str] = set()
        while True:
            objects: list[str] = []
            links: list[tuple[str, str]] = []
            left = [r.path for r in self.left_out]
            for tree in sorted(self.trees):
                for path, version in _walk_tree(self.fs, tree):
                    if left and inside_left(path, tree, left):
                        continue
                    entry = version.entry
                    if entry.kind == SYMLINK and path not in done_links:
                        done_links.add(path)
                        links.append((path, entry.link))
                    elif entry.kind in (FILE, HARDLINK) and _maybe_elf(path, entry.mode) \
                            and path not in self.seen_programs:
                        self.seen_programs.add(path)
                        objects.append(path)
            for path, target in links:
                hit = resolve(self.fs, target, posixpath.dirname(path))
                if hit is None or self.covers(hit.path):
                    continue
                if hit.is_dir:
                    self.keep_tree(hit.path, f"the target of the symlink /{path} in a kept tree")
                else:
                    self.keep(hit, f"the target of the symlink /{path} in a kept tree")
                    if hit.is_file and hit.path not in self.seen_programs:
                        self.seen_programs.add(hit.path)
                        objects.append(hit.path)
            if not objects and not links:
                return
            self.contents.fetch(objects)  # reads again only what the scan could not learn
            for path in objects:
                info = self.info_of(path)
                if info is not None:
                    self.follow_elf(path, info, [])
            self.run()

    def covers(self, path: str) -> bool:
        return path in self.paths or in_trees(path, self.trees, [])


def _path_like(arg: str) -> list[str]:
    """Return the values in one argument that may name files: the argument, the value of
    ``--opt=value``, and the entries of a ``:``-separated class path."""
    values = []
    if arg.startswith("-"):
        if "=" not in arg:
            return []
        arg = arg.split("=", 1)[1]
    for part in arg.split(":") if ":" in arg and "/" in arg else [arg]:
        part = part.removesuffix("/*").removesuffix("*")
        if part and ("/" in part or "." in part):
            values.append(part)
    return values


def _maybe_elf(path: str, mode: int) -> bool:
    base = posixpath.basename(path)
    return base.endswith(".so") or ".so." in base or bool(mode & 0o111)


def _walk_tree(fs: MergedFS, tree: str):
    stack = [tree]
    while stack:
        d = stack.pop()
        for name in fs.children(d):
            path = f"{d}/{name}" if d else name
            version = fs.get(path)
            if version is None:
                stack.append(path)
                continue
            if version.entry.kind == DIR:
                stack.append(path)
            yield path, version


def tree_paths(fs: MergedFS, tree: str):
    """Yield every path below ``tree`` (not ``tree`` itself) with its final version."""
    yield from _walk_tree(fs, tree)


def entrypoint_closure(image: Image, fs: MergedFS, contents: Contents) -> Closure:
    """Return what ``image``'s Entrypoint/Cmd needs to run, found statically."""
    walker = _Walker(image, fs, contents)
    argv = command_line(image)
    walker.start(argv)
    walker.run()
    walker.follow_programs()
    walker.run()
    walker.expand_trees()
    walker.run()
    return Closure(frozenset(walker.paths), frozenset(walker.trees), tuple(walker.reasons), tuple(walker.notes),
                   tuple(argv), walker.interpreted, tuple(walker.blind_spots), tuple(walker.left_out))
