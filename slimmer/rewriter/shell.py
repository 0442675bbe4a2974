"""What a script starts: its shebang interpreter, and for shell scripts a static guess at the
external commands it runs (the first word of each simple command that is not a keyword or a
builtin). The guess cannot see commands built at run time (``$CMD``, ``eval``); the closure
says so. Imports nothing of slimmer.
"""

from __future__ import annotations

import re
import shlex

# POSIX reserved words plus the builtins of dash, bash and busybox ash: a builtin never runs a
# file even when one of the same name sits in PATH.
KEYWORDS = frozenset("""
if then else elif fi for while until do done case esac in function select time ! { } [[ ]] . : [
alias bg break builtin cd command continue declare echo eval exec exit export false fc fg
getopts hash jobs kill let local printf pwd read readonly return set shift source test times
trap true type typeset ulimit umask unalias unset wait
""".split())  # noqa: SIM905 -- the words read as a table
# Prefixes that run the word after them (and, for the external ones, are programs themselves).
PREFIXES = {"exec": False, "command": False, "builtin": False, "time": False, "nohup": True, "env": True,
            "nice": True, "setsid": True, "chroot": True, "timeout": True, "su-exec": True, "gosu": True,
            "tini": True, "dumb-init": True}
SHELLS = frozenset({"sh", "bash", "dash", "ash", "ksh", "mksh", "zsh", "busybox"})

_WORD = re.compile(r"^[A-Za-z0-9_./+@%-][A-Za-z0-9_./+@%:-]*$")
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SPLIT = re.compile(r"\|\||&&|[;|&\n(){}`]|\$\(")


def shebang(head: bytes) -> list[str] | None:
    """Return the interpreter and its arguments from a ``#!`` line, or None if ``head`` has none.

    Linux passes everything after the interpreter path as one argument; ``env -S`` splits it,
    so the words are returned split for ``env`` and kept whole otherwise.
    """
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "surrogateescape").strip()
    if not line:
        return None
    parts = line.split(None, 1)
    if len(parts) == 1:
        return parts
    if parts[0].rsplit("/", 1)[-1] == "env":
        return [parts[0]] + parts[1].split()
    return parts


def env_command(args: list[str]) -> str | None:
    """Return the command ``env`` runs given its arguments (options and NAME=value skipped)."""
    for arg in args:
        if arg.startswith("-") or _ASSIGN.match(arg):
            continue
        return arg
    return None


def is_shell(name: str) -> bool:
    """Return whether the program called ``name`` (a path or a bare name) is a POSIX shell."""
    return name.rsplit("/", 1)[-1] in SHELLS


def commands(text: str) -> list[str]:
    """Return, in order of first appearance, the words a shell script runs as commands."""
    out: list[str] = []
    for word in _words(text):
        if word not in KEYWORDS and _WORD.match(word) and word not in out:
            out.append(word)
    return out


def runs_computed_commands(text: str) -> bool:
    """Return whether a script runs a command whose name is computed (``$CMD``, ``"$@"``,
    ``eval``): static analysis cannot know what that runs."""
    return any(word.startswith("$") or word == "eval" for word in _words(text))


def _words(text: str) -> list[str]:
    out: list[str] = []
    for raw in text.splitlines():
        for segment in _SPLIT.split(_strip_comment(raw)):
            out += _command_words(segment)
    return out


def sourced(text: str) -> list[str]:
    """Return the files a shell script reads with ``.`` or ``source`` (literal names only)."""
    out: list[str] = []
    for raw in text.splitlines():
        for segment in _SPLIT.split(_strip_comment(raw)):
            words = segment.split()
            if len(words) >= 2 and words[0] in (".", "source") and "$" not in words[1]:
                name = words[1].strip("'\"")
                if name not in out:
                    out.append(name)
    return out


def _strip_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t;&|("):
            return line[:i]
    return line


def _command_words(segment: str) -> list[str]:
    """Return the command word of one simple command, after the programs that run it."""
    try:
        words = shlex.split(segment, posix=True)
    except ValueError:
        words = segment.split()
    out = []
    while words and _ASSIGN.match(words[0]):
        words.pop(0)
    while words:
        word = words.pop(0)
        if word in PREFIXES:
            if PREFIXES[word]:
                out.append(word)
            while words and (words[0].startswith("-") or _ASSIGN.match(words[0])):
                words.pop(0)
            if word == "timeout" and words:
                words.pop(0)  # the duration
            continue
        if not word.startswith("-"):
            out.append(word)
        break
    return out
