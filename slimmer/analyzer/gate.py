"""The CI gate: the rules an image must meet, checked against an analysis.

``RULES`` is the one schema of ``slimmer check``: every rule's key (the settings key and the
command-line option ``--KEY``), the kind of value it takes, the ``Thresholds`` field it sets and,
for dive's three, dive's name. dive's rules keep dive's meaning and defaults (``dive --ci``):
``lowest-efficiency`` (0.9), ``highest-wasted-bytes`` (off) and ``highest-user-wasted-percent``
(0.1, a ratio), computed and compared exactly as dive 0.13.1 does, NaN and +Inf included (the
layers above the first add no bytes: 0/0 is NaN and passes, n/0 is +Inf and fails). The rules
dive cannot express: the true waste and what slimming could save (bytes, or a share of the
image), the size, categories and findings. A rule set to None is off. Imports only analyzer
records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from slimmer.analyzer.findings import could_save

PASS = "pass"
FAIL = "fail"
SKIP = "skip"
MISCONFIGURED = "misconfigured"

# kinds of value a rule takes
RATIO = "ratio"  # 0.9 or 90%
SIZE = "size"  # 20MB, 2GiB, 1000
SIZE_OR_SHARE = "size-or-share"  # 20MB, or 5% of the image's bytes
CATEGORY_SIZES = "category-sizes"  # {category: size}
CATEGORIES = "categories"  # [category, ...]
FINDING_SIZES = "finding-sizes"  # {finding id: size}
FINDINGS = "findings"  # [finding id, ...]


@dataclass(frozen=True)
class Rule:
    """One key of the schema."""

    key: str  # the settings key and the option --KEY
    field: str  # the Thresholds field it sets
    kind: str
    help: str
    dive: str = ""  # dive's name for it (.dive-ci, --lowestEfficiency), if dive has it
    metavar: str = ""


RULES: tuple[Rule, ...] = (
    Rule("lowest-efficiency", "lowest_efficiency", RATIO,
         "Fail when dive's efficiency is below this (0.9 or 90%; default 0.9).", "lowestEfficiency", "RATIO"),
    Rule("highest-wasted-bytes", "highest_wasted_bytes", SIZE,
         "Fail when dive's wasted bytes are above this (20MB; default off).", "highestWastedBytes", "SIZE"),
    Rule("highest-user-wasted-percent", "highest_user_wasted_percent", RATIO,
         "Fail when dive's wasted share of the layers above the first is above this (0.1 or 10%; default 0.1).",
         "highestUserWastedPercent", "RATIO"),
    Rule("max-true-waste", "max_true_waste", SIZE_OR_SHARE,
         "Fail when the bytes truly wasted (stored in a layer, gone from the final filesystem) exceed this "
         "(10MB, or 5% of the image).", metavar="SIZE|PCT"),
    Rule("max-could-save", "max_could_save", SIZE_OR_SHARE,
         "Fail when what slimming could save exceeds this (50MB, or 20% of the image).", metavar="SIZE|PCT"),
    Rule("max-size", "max_size", SIZE, "Fail when all layers together exceed this size.", metavar="SIZE"),
    Rule("max-category", "max_category_bytes", CATEGORY_SIZES,
         "Fail when a category's final bytes exceed SIZE (repeatable), e.g. cache=10MB.", metavar="CATEGORY=SIZE"),
    Rule("forbid-category", "forbidden_categories", CATEGORIES,
         "Fail when the final filesystem holds any byte of this category (repeatable).", metavar="CATEGORY"),
    Rule("max-finding", "max_finding_bytes", FINDING_SIZES,
         "Fail when the findings of this kind could save more than SIZE (repeatable), e.g. "
         "cache-left-behind=5MB.", metavar="FINDING=SIZE"),
    Rule("forbid-finding", "forbidden_findings", FINDINGS,
         "Fail when a finding of this kind is reported (repeatable), e.g. runs-as-root.", metavar="FINDING"),
)
RULE_BY_KEY: Mapping[str, Rule] = {r.key: r for r in RULES}
DIVE_RULES: tuple[Rule, ...] = tuple(r for r in RULES if r.dive)


@dataclass(frozen=True)
class Share:
    """A limit given as a share of the image's bytes (all layers): ``Share(0.05)`` is 5%."""

    ratio: float

    def of(self, total: int) -> float:
        return self.ratio * total


Limit = int | Share


@dataclass(frozen=True)
class Thresholds:
    """What ``slimmer check`` enforces; None turns a rule off. ``misconfigured`` names the dive
    rules whose value dive would refuse (``(field, why)``): the gate fails on them, as dive's
    "CI Misconfigured" does."""

    lowest_efficiency: float | None = 0.9
    highest_wasted_bytes: int | None = None
    highest_user_wasted_percent: float | None = 0.1
    max_size: int | None = None
    max_category_bytes: Mapping[str, int] = field(default_factory=dict)
    forbidden_categories: tuple[str, ...] = ()
    max_true_waste: Limit | None = None
    max_could_save: Limit | None = None
    max_finding_bytes: Mapping[str, int] = field(default_factory=dict)
    forbidden_findings: tuple[str, ...] = ()
    misconfigured: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict: ``status`` is pass, fail, skip (rule off) or misconfigured."""

    rule: str
    status: str
    actual: float | int | None
    limit: float | int | None
    message: str


@dataclass(frozen=True)
class CheckResult:
    """The verdict of every rule for one image."""

    image: str
    results: tuple[RuleResult, ...]

    @property
    def passed(self) -> bool:
        """True when no rule failed and none was misconfigured."""
        return all(r.status not in (FAIL, MISCONFIGURED) for r in self.results)

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if r.status in (FAIL, MISCONFIGURED))


def _bytes(n: float) -> str:
    n = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _percent(x: float) -> str:
    if math.isnan(x):
        return "NaN %"
    if math.isinf(x):
        return "+Inf %" if x > 0 else "-Inf %"
    return f"{x * 100:.2f} %"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _limit(limit: Limit, total: int) -> tuple[float, str]:
    if isinstance(limit, Share):
        return limit.of(total), f"{limit.ratio * 100:g} % of {_bytes(total)}"
    return limit, _bytes(limit)


def check(analysis, thresholds: Thresholds, image: str = "") -> CheckResult:
    """Return the verdict of ``thresholds`` on ``analysis`` (a ``report.Analysis``). dive's
    three rules are always listed (skipped when off, as dive lists them); the others only when
    they are set."""
    d = analysis.dive
    t = thresholds
    out: list[RuleResult] = []
    broken = dict(t.misconfigured)

    def rule(name, actual, limit, failed, shown_actual, shown_limit, what):
        if name in broken:
            out.append(RuleResult(name, MISCONFIGURED, actual, None, broken[name]))
            return
        if limit is None:
            out.append(RuleResult(name, SKIP, actual, None, f"{what}: {shown_actual} (rule off)"))
            return
        verdict = FAIL if failed else PASS
        out.append(RuleResult(name, verdict, actual, limit, f"{what}: {shown_actual} "
                              f"({'must be' if failed else 'is'} {shown_limit})"))

    # dive's comparisons, kept as dive writes them: NaN compares false both ways
    eff = d.efficiency
    low = t.lowest_efficiency
    rule("lowest_efficiency", _finite(eff), low, low is not None and low > eff, _percent(eff),
         f">= {_percent(low or 0)}", "image efficiency (dive)")
    wb = d.wasted_bytes
    rule("highest_wasted_bytes", wb, t.highest_wasted_bytes,
         t.highest_wasted_bytes is not None and wb > t.highest_wasted_bytes, _bytes(wb),
         f"<= {_bytes(t.highest_wasted_bytes or 0)}", "wasted bytes (dive)")
    uw = d.user_wasted_percent
    high = t.highest_user_wasted_percent
    what = "wasted share of the layers above the first (dive)"
    if not math.isfinite(uw):
        what += (f"; they add no bytes but waste {_bytes(wb)}" if wb else "; they add no bytes and waste none")
    rule("highest_user_wasted_percent", _finite(uw), high, high is not None and uw > high, _percent(uw),
         f"<= {_percent(high or 0)}", what)
    total = analysis.summary.total_size
    for name, have, limit, what in (("max_true_waste", analysis.true_wasted_bytes, t.max_true_waste,
                                     "bytes truly wasted (stored, gone from the final filesystem)"),
                                    ("max_could_save", analysis.could_save_bytes, t.max_could_save,
                                     "what slimming could save")):
        if limit is not None:
            value, shown = _limit(limit, total)
            rule(name, have, value, have > value, _bytes(have), f"<= {shown}", what)
    if t.max_size is not None:
        rule("max_size", total, t.max_size, total > t.max_size, _bytes(total), f"<= {_bytes(t.max_size)}",
             "image size (all layers)")
    final = {c.category: c.final_bytes for c in analysis.categories}
    for cat in sorted(t.max_category_bytes):
        limit = t.max_category_bytes[cat]
        have = final.get(cat, 0)
        rule(f"max_category_bytes.{cat}", have, limit, have > limit, _bytes(have), f"<= {_bytes(limit)}",
             f"{cat} bytes in the final filesystem")
    for cat in t.forbidden_categories:
        have = final.get(cat, 0)
        rule(f"forbidden_categories.{cat}", have, 0, have > 0, _bytes(have), "0 B",
             f"forbidden {cat} bytes in the final filesystem")
    for fid in sorted(t.max_finding_bytes):
        limit = t.max_finding_bytes[fid]
        have = could_save([f for f in analysis.findings if f.id == fid])
        rule(f"max_finding_bytes.{fid}", have, limit, have > limit, _bytes(have), f"<= {_bytes(limit)}",
             f"what fixing {fid} could save")
    for fid in t.forbidden_findings:
        count = sum(1 for f in analysis.findings if f.id == fid)
        rule(f"forbidden_findings.{fid}", count, 0, count > 0, f"{count} found", "none",
             f"forbidden finding {fid}")
    return CheckResult(image, tuple(out))
