"""What a source file imports, read statically and cheaply: Python ``import`` statements and
literal dynamic imports, JavaScript ``require`` and ``import`` specifiers.

Python: regular expressions over the text find the import statements (a statement starts a
line, follows ``;`` or a one-line ``try:``/``if ...:``; a parenthesised name list may span
lines), ``import a.b``, ``from x import y`` (relative too), and ``importlib.import_module("m")``
and ``__import__("m")`` with literal names; a call with a computed name is flagged. Measured
on Debian's standard library (668 files, 11 MB): 0.8 s against 5 s for ``ast.parse``, with
every import ``ast`` finds; it also takes an import line inside a docstring (22 files there),
which can only keep a module more, never one less.

Facts are tuples (they go through ``marshal``): ``(imports, computed)`` where each import is
``(level, module, names, when)``: ``level`` the number of leading dots, ``names`` the names of
a ``from`` import (``("*",)`` for a star), ``()`` for a plain ``import``, and ``when`` TOP (run
on import), LAZY (in a function body), MAIN (in an ``if __name__ == "__main__":`` block) or
OTHER_OS (in a block that runs only on another platform than Linux).

Python codecs: the names a source gives as an encoding with a literal (``codec_names``):
``.encode("x")``/``.decode("x")``, ``encoding="x"`` (a keyword argument, a default or an
attribute), ``codecs.lookup("x")`` and its siblings, ``codecs.open(f, m, "x")``,
``codecs.encode(obj, "x")``, ``str(b, "x")``, ``bytes(s, "x")``, ``TextIOWrapper(b, "x")``,
and the source's own ``coding:`` declaration (PEP 263); an error handler is not a codec. A name
computed at run time (``.decode(charset)``, ``encoding=enc``) is flagged. ``codec_aliases``
reads the ``aliases`` dict of ``encodings/aliases.py``, ``codec_modules`` resolves a name
through it as ``encodings.search_function`` does.

JavaScript: literal specifiers of ``require("x")``, ``import ... from "x"``, ``import "x"``,
``import("x")`` and ``export ... from "x"``, with comments removed; ``(specifiers,
computed)``. Imports nothing of slimmer.
"""

from __future__ import annotations

import ast
import bisect
import re

VERSION = 4

# An import statement starts a line (or follows ``;`` or a one-line ``try:``/``if ...:``);
# a parenthesised name list may span lines, a backslash continues one.
_STATEMENT = re.compile(r"""(?mx)
    (?:^|;)[ \t]*
    (?:(?:try|else|finally)[ \t]*:[ \t]*|(?:if|elif|while|with|for|except)\b[^:\n#]*:[ \t]*)?
    (?:from[ \t]+(?P<dots>\.*)[ \t]*(?P<module>[\w.]*)[ \t]+import[ \t]*
        (?:\((?P<group>[^)]*)\)|(?P<names>(?:[^\n;#\\]|\\\n)+))
      |import[ \t]+(?P<plain>(?:[^\n;#\\]|\\\n)+))
""")
_DYNAMIC = re.compile(r"""(?:\bimport_module|\b__import__)\s*\(\s*(?:(['"])(\.*[\w.]*)\1"""
                      r"""(?:\s*,\s*(?:package\s*=\s*)?(['"])([\w.]*)\3)?|(?P<computed>[^'"\s)]))""")
_COMMENT = re.compile(r"#[^\n]*")
_NAME = re.compile(r"^[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*$")

Import = tuple[int, str, tuple[str, ...], int]


def python_imports(source: bytes) -> tuple[tuple[Import, ...], bool]:
    """Return (imports, whether a module is imported by a computed name) of Python ``source``."""
    if b"import" not in source:  # a substring test is far cheaper than any regular expression
        return (), False
    text = source.decode("utf-8", "surrogateescape")
    found: list[Import] = []
    where = _Blocks(text)
    for m in _STATEMENT.finditer(text):
        when = where.of(m.start() + (m.group(0)[:1] == ";"))
        plain = m.group("plain")
        if plain is not None:
            for part in plain.replace("\\\n", " ").split(","):
                name = part.split(" as ")[0].strip()
                if _NAME.match(name):
                    found.append((0, name, (), when))
            continue
        dots, module = m.group("dots"), m.group("module")
        names = m.group("group")
        names = _COMMENT.sub("", names) if names is not None else m.group("names").replace("\\\n", " ")
        parts = tuple(p for p in (n.split(" as ")[0].strip() for n in names.split(",")) if p == "*" or _NAME.match(p))
        if (module and not _NAME.match(module)) or not (module or dots):
            continue
        found.append((len(dots), module, parts, when))
    computed = False
    if b"__import__" in source or b"import_module" in source:
        for m in _DYNAMIC.finditer(text):
            if m.group("computed"):
                computed = True
                continue
            name, package = m.group(2), m.group(4)
            level = len(name) - len(name.lstrip("."))
            if level and package:
                base = package.split(".")
                if level - 1 < len(base):
                    rest = name[level:]
                    name = ".".join(base[:len(base) - level + 1]) + ("." + rest if rest else "")
                    level = 0
            if _NAME.match(name.lstrip(".")):
                found.append((level, name.lstrip("."), (), where.of(m.start())))
    return tuple(dict.fromkeys(found)), computed


_HEADER = re.compile(r"(?:async[ \t]+)?def\b|if[ \t]+__name__[ \t]*==[ \t]*['\"]__main__['\"]")
# A block that runs only on another platform than Linux (the image's): ``if sys.platform ==
# "win32":``, ``elif sys.platform.startswith("darwin"):``, ``if os.name == "nt":``, ``if
# sys.platform in ("win32", "cygwin"):``.
_PLATFORM = re.compile(r"""(?:el)?if[ \t]+(?:(?P<what>sys\.platform|os\.name)[ \t]*(?P<op>==|!=|in)[ \t]*"""
                       r"""(?P<value>['"][\w.-]*['"]|\((?:[ \t]*['"][\w.-]*['"][ \t]*,?)+\))"""
                       r"""|sys\.platform\.startswith\([ \t]*(?P<prefix>['"][\w.-]*['"])[ \t]*\))[ \t]*:""")
_HOST = {"sys.platform": "linux", "os.name": "posix"}


def _other_platform(header: str) -> bool:
    """Return whether an ``if`` header's test is false on Linux (so its block never runs)."""
    m = _PLATFORM.match(header)
    if m is None:
        return False
    if m.group("prefix"):
        return not "linux".startswith(m.group("prefix")[1:-1])
    host = _HOST[m.group("what")]
    values = re.findall(r"['\"]([\w.-]*)['\"]", m.group("value"))
    op = m.group("op")
    if op == "in":
        return host not in values
    return (values[0] != host) if op == "==" else (values[0] == host)


class _Blocks:
    """Says where in the module's structure an offset lies: TOP (run on import, conditional
    blocks included), LAZY (inside a function body: run when it is called), MAIN (in an
    ``if __name__ == "__main__":`` block: run only when the file is the program) or OTHER_OS
    (under a test of ``sys.platform`` or ``os.name`` that is false on Linux). Blocks
    are found by indentation, line by line; a line of a multi-line string can close a block
    early, which only makes an import count as TOP."""

    def __init__(self, text: str):
        self.text = text
        self.marks: list[tuple[int, int]] | None = None

    def _scan(self) -> list[tuple[int, int]]:
        marks: list[tuple[int, int]] = []  # (offset where a state starts, state)
        stack: list[tuple[int, int]] = []  # (indent of the header, state inside)
        offset = 0
        state = TOP
        for line in self.text.split("\n"):
            body = line.lstrip(" \t")
            if body and body[0] != "#":
                indent = len(line) - len(body)
                while stack and indent <= stack[-1][0]:
                    stack.pop()
                new = stack[-1][1] if stack else TOP
                if new != state:
                    marks.append((offset, new))
                    state = new
                if (body[0] in "adi") and _HEADER.match(body):
                    inner = MAIN if body[0] == "i" else LAZY
                    stack.append((indent, max(inner, state) if state != TOP else inner))
                elif body[0] in "ie" and body.startswith(("if ", "elif ")) and _other_platform(body):
                    stack.append((indent, OTHER_OS))
            offset += len(line) + 1
        return marks

    def of(self, offset: int) -> int:
        if self.marks is None:
            self.marks = self._scan()
            self.starts = [start for start, _ in self.marks]
        at = bisect.bisect_right(self.starts, offset)
        return self.marks[at - 1][1] if at else TOP


TOP, LAZY, MAIN, OTHER_OS = 0, 1, 2, 3



# ---- Python codecs --------------------------------------------------------------------------

_CODEC = r"""(?:(['"])(?P<name>[\w.+ -]{1,40})\1|(?P<var>(?!None\b|True\b|False\b)[A-Za-z_][\w.]*))"""
# Each pattern starts with a literal, which the regular expression engine finds fast; what may
# not come before it is checked apart. ``.encode(x)``/``.decode(x)``: a literal, or a variable
# whose name says it holds an encoding (``.decode(charset)``; ``JSONEncoder().encode(obj)`` is
# no codec look-up). ``encoding=x``: a keyword argument, a default or an attribute, never
# ``encoding == x``.
_METHOD = re.compile(r"\.(?:en|de)code\(\s*(?:encoding\s*=\s*)?" + _CODEC, re.ASCII)
_KEYWORD = re.compile(r"encoding(?<!\wencoding)\s*(?::[^=\n()]{1,40})?=\s*" + _CODEC, re.ASCII)
_LOOKUP = re.compile(r"codecs\.(?:lookup|getencoder|getdecoder|getincrementalencoder|getincrementaldecoder"
                     r"|getreader|getwriter)\(\s*" + _CODEC, re.ASCII)
# calls that take the encoding as a positional argument, with the index of that argument
_ARGS = r"\((?P<args>[^()\n]*)\)"
_POSITIONAL = (
    ("codecs.", re.compile(r"codecs\.(?P<call>open|encode|decode|iterencode|iterdecode|EncodedFile)" + _ARGS)),
    ("str(", re.compile(r"(?P<call>str)" + _ARGS)),
    ("byte", re.compile(r"(?P<call>byte(?:s|array))" + _ARGS)),
    ("TextIOWrapper(", re.compile(r"(?P<call>TextIOWrapper)" + _ARGS)),
)
_AT = {"open": (2,), "EncodedFile": (1, 2)}
_ARG = re.compile(r"\s*" + _CODEC + r"\s*\Z", re.ASCII)
_COOKIE = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.ASCII)  # PEP 263
_HOLDS_CODEC = re.compile(r"enc|charset|codec", re.IGNORECASE)

Codecs = tuple[tuple[str, ...], bool]


def codec_names(source: bytes) -> Codecs:
    """Return (the codec names ``source`` gives with literals, whether it names one computed
    at run time). Measured on 186 MB of Python sources: 1.5 s, a tenth of ``python_imports``."""
    text = source.decode("utf-8", "surrogateescape")
    names: list[str] = []
    computed = False
    for line in text.split("\n", 2)[:2]:
        m = _COOKIE.match(line)
        if m:
            names.append(m.group(1))
            break
    for needle, regex in ((".encode(", _METHOD), (".decode(", _METHOD), ("encoding", _KEYWORD), ("codecs.", _LOOKUP)):
        if needle not in text or (regex is _METHOD and needle == ".decode(" and ".encode(" in text):
            continue  # _METHOD finds both methods: run it once
        for m in regex.finditer(text):
            var = m.group("var")
            if var is None:
                names.append(m.group("name"))
            elif regex is not _METHOD or _HOLDS_CODEC.search(var):
                computed = True
    for needle, regex in _POSITIONAL:
        if needle not in text:
            continue
        for m in regex.finditer(text):
            before = text[m.start() - 1:m.start()]
            if before and (before.isalnum() or (before in "_." and needle != "codecs.")):
                continue  # mystr(...), obj.str(...)
            args = m.group("args").split(",")
            for at in _AT.get(m.group("call"), (1,)):
                arg = _ARG.match(args[at]) if at < len(args) else None
                if arg is None:
                    continue
                if arg.group("var") is None:
                    names.append(arg.group("name"))
                elif _HOLDS_CODEC.search(arg.group("var")):
                    computed = True
    return tuple(dict.fromkeys(names)), computed


def codec_aliases(source: bytes) -> tuple[tuple[str, str], ...]:
    """Return the pairs of the ``aliases = {...}`` dict of an ``encodings/aliases.py``
    (() when it has none a literal can give)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return ()
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and \
                any(isinstance(t, ast.Name) and t.id == "aliases" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                return ()
            return tuple((k, v) for k, v in value.items() if isinstance(k, str) and isinstance(v, str))
    return ()


def normalize_encoding(name: str) -> str:
    """Return ``name`` as ``codecs.lookup`` hands it to the search function of ``encodings``:
    lower case, every run of characters other than ASCII letters, digits and ``.`` one ``_``,
    none at either end (CPython's ``_Py_normalize_encoding``, then ``normalize_encoding``)."""
    out: list[str] = []
    punct = False
    for c in name.lower():
        if c.isascii() and (c.isalnum() or c == "."):
            if punct and out:
                out.append("_")
            out.append(c)
            punct = False
        else:
            punct = True
    return "".join(out)


def codec_modules(name: str, aliases: dict[str, str]) -> tuple[str, ...]:
    """Return the modules of ``encodings`` that ``encodings.search_function`` tries for codec
    ``name``, in its order: the alias's module, then the normalized name itself."""
    norm = normalize_encoding(name)
    aliased = aliases.get(norm) or aliases.get(norm.replace(".", "_"))
    return tuple(m for m in dict.fromkeys([aliased, norm] if aliased else [norm]) if m and "." not in m)

# ---- JavaScript -----------------------------------------------------------------------------

_JS_COMMENT = re.compile(r"/\*.*?\*/|(?<![:\\\w'\"])//[^\n]*", re.DOTALL)
_JS_SPECIFIERS = re.compile(r"""(?x)
    \brequire\s*\(\s*(['"`])([^'"`\n]+)\1\s*\)
  | \bimport\s*\(\s*(['"`])([^'"`\n]+)\3\s*\)
  | (?:^|[;\n}])\s*import\s+(?:[\w*{}\s,$]+?\s+from\s+)?(['"])([^'"\n]+)\5
  | (?:^|[;\n}])\s*export\s+(?:\*|\{[^}]*\})(?:\s+as\s+[\w$]+)?\s+from\s+(['"])([^'"\n]+)\7
""")
_JS_COMPUTED = re.compile(r"\brequire\s*\(\s*(?!['\"`]|\))|\bimport\s*\(\s*(?!['\"`])")


def js_requires(source: bytes) -> tuple[tuple[str, ...], bool]:
    """Return (literal module specifiers, whether one is computed) of JavaScript ``source``."""
    if b"require" not in source and b"import" not in source and b"export" not in source:
        return (), False
    text = _JS_COMMENT.sub(" ", source.decode("utf-8", "surrogateescape"))
    found = []
    for m in _JS_SPECIFIERS.finditer(text):
        spec = m.group(2) or m.group(4) or m.group(6) or m.group(8)
        if spec and "${" not in spec:
            found.append(spec)
    return tuple(dict.fromkeys(found)), bool(_JS_COMPUTED.search(text))
