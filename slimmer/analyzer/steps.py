"""Dockerfile steps: which history step (``created_by``) made each layer, and what a step does.

A step's text is classified by tables of regular expressions (data, not code): the
instruction, the package installs it runs, the caches it cleans, whether it copies the whole
build context. Imports only the model and ``usage.clean_step``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from slimmer.analyzer.usage import clean_step
from slimmer.model import Image

# (manager, regex on the step text) -- a step that runs this installs packages
INSTALLS: tuple[tuple[str, str], ...] = (
    ("apt", r"\b(?:apt-get|apt|aptitude)\s+(?:-\S+\s+)*(?:install|upgrade|dist-upgrade|update)\b"),
    ("apk", r"\bapk\s+(?:-\S+\s+)*(?:add|upgrade|update)\b"),
    ("dnf", r"\b(?:dnf|yum|microdnf|zypper)\s+(?:-\S+\s+)*install\b"),
    ("pip", r"\b(?:pip3?(?:\.\d+)?|python3?(?:\.\d+)?\s+-m\s+pip|uv\s+pip)\s+(?:-\S+\s+)*install\b"),
    ("npm", r"\bnpm\s+(?:-\S+\s+)*(?:install|ci|i)\b"),
    ("yarn", r"\byarn(?:\s+(?:install|add)\b|\s*(?:&&|;|$))"),
    ("pnpm", r"\bpnpm\s+(?:-\S+\s+)*(?:install|i|add)\b"),
    ("go", r"\bgo\s+(?:mod\s+download|build|install|get)\b"),
    ("gem", r"\b(?:gem\s+install|bundle(?:\s+install)?\b)"),
    ("composer", r"\bcomposer\s+(?:install|require)\b"),
    ("maven", r"\bmvn\b"),
    ("gradle", r"\bgradlew?\b"),
    ("cargo", r"\bcargo\s+(?:build|fetch|install)\b"),
)

# dependency installs that a cache-friendly Dockerfile runs before copying the sources
DEPENDENCY_INSTALLS: tuple[tuple[str, str], ...] = (
    ("npm", r"\bnpm\s+(?:-\S+\s+)*(?:install|ci|i)\b"),
    ("yarn", r"\byarn(?:\s+install\b|\s*(?:&&|;|$))"),
    ("pnpm", r"\bpnpm\s+(?:-\S+\s+)*(?:install|i)\b"),
    ("pip", r"\b(?:pip3?(?:\.\d+)?|python3?(?:\.\d+)?\s+-m\s+pip|uv\s+pip)\s+(?:-\S+\s+)*install\s+.*"
            r"(?:-r\s*\S+|requirements|\s\.(?:\s|$|\[))"),
    ("poetry", r"\bpoetry\s+install\b"),
    ("go", r"\bgo\s+(?:mod\s+download|build|test|install|get|run)\b"),
    ("gem", r"\bbundle(?:\s+install)?\b"),
    ("composer", r"\bcomposer\s+install\b"),
    ("maven", r"\bmvn\b.*\b(?:dependency:(?:go-offline|resolve)|install|package)\b"),
    ("gradle", r"\bgradlew?\b.*\b(?:dependencies|build)\b"),
    ("cargo", r"\bcargo\s+(?:fetch|build)\b"),
)

# (manager, regex) -- the step cleans what that manager's installs leave behind
CLEANS: tuple[tuple[str, str], ...] = (
    ("apt", r"rm\s+-[a-zA-Z]*\s+[^&;|]*/var/lib/apt/lists|apt-get\s+clean|rm\s+-[a-zA-Z]*\s+[^&;|]*/var/cache/apt"),
    ("apk", r"--no-cache\b|rm\s+-[a-zA-Z]*\s+[^&;|]*/var/cache/apk"),
    ("dnf", r"(?:dnf|yum|microdnf)\s+clean\s+all"),
    ("pip", r"--no-cache-dir\b|PIP_NO_CACHE_DIR|pip\s+cache\s+purge|rm\s+-[a-zA-Z]*\s+[^&;|]*\.cache/pip"),
    ("npm", r"npm\s+cache\s+clean|rm\s+-[a-zA-Z]*\s+[^&;|]*\.npm"),
    ("yarn", r"yarn\s+cache\s+clean"),
    ("go", r"go\s+clean\s+-(?:cache|modcache)|rm\s+-[a-zA-Z]*\s+[^&;|]*(?:go-build|pkg/mod)"),
)

_INSTRUCTION = re.compile(r"^([A-Z]+)\b")
_CONTEXT_COPY = re.compile(
    r"^(?:COPY|ADD)\s+(?:--\S+\s+)*(?:\.|\./|dir:[0-9a-f]+)\s+(?:in\s+)?\S+\s*$")
_INSTALLS = [(m, re.compile(rx)) for m, rx in INSTALLS]
_DEPS = [(m, re.compile(rx)) for m, rx in DEPENDENCY_INSTALLS]
_CLEANS = [(m, re.compile(rx)) for m, rx in CLEANS]


@dataclass(frozen=True)
class Step:
    """One history step of the image, and the layer it made (None for an empty-layer step)."""

    index: int  # position in the config history
    layer: int | None
    text: str  # created_by without the shell wrapper (``RUN apt-get ...``, ``COPY . .``)
    instruction: str  # RUN, COPY, ADD, ENV, ... ("" when unknown)
    installs: tuple[str, ...]  # package managers whose installs the step runs
    cleans: tuple[str, ...]  # managers whose leftovers the step cleans
    copies_context: bool  # COPY/ADD of the whole build context
    dependency_install: tuple[str, ...]  # dependency installs a cache-friendly order puts first


def instruction_of(text: str) -> str:
    """Return the Dockerfile instruction of a cleaned step text (``RUN``, ``COPY``, ...)."""
    m = _INSTRUCTION.match(text)
    return m.group(1) if m else ""


def classify(index: int, layer: int | None, created_by: str) -> Step:
    """Return the step record for one history entry."""
    text = clean_step(created_by)
    instr = instruction_of(text)
    if not instr and layer is not None and text:
        instr = "RUN"  # non-classic builders record RUN steps as bare shell commands
    run = instr == "RUN"
    body = text[4:] if text.startswith("RUN ") else text
    return Step(
        index=index, layer=layer, text=text, instruction=instr,
        installs=tuple(m for m, rx in _INSTALLS if run and rx.search(body)),
        cleans=tuple(m for m, rx in _CLEANS if run and rx.search(body)),
        copies_context=bool(_CONTEXT_COPY.match(text)),
        dependency_install=tuple(m for m, rx in _DEPS if run and rx.search(body)),
    )


def image_steps(image: Image) -> list[Step]:
    """Return every history step of ``image`` in order, each with the layer it made; layers the
    history does not account for get a step ``(missing history)``."""
    out: list[Step] = []
    li = 0
    for i, step in enumerate(image.history):
        if step.empty_layer:
            out.append(classify(i, None, step.created_by))
        elif li < len(image.layers):
            out.append(classify(i, li, step.created_by))
            li += 1
    while li < len(image.layers):
        out.append(Step(len(out), li, "(missing history)", "", (), (), False, ()))
        li += 1
    return out


def step_of_layer(steps: list[Step]) -> dict[int, Step]:
    """Return {layer index: the step that made it}."""
    return {s.layer: s for s in steps if s.layer is not None}
