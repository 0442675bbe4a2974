"""The CI gate: thresholds an image must meet, checked against an analysis.

dive's three rules, with dive's meaning and defaults (``dive --ci``): ``lowest_efficiency``
(0.9), ``highest_wasted_bytes`` (off) and ``highest_user_wasted_percent`` (0.1, a ratio), all
computed exactly as dive computes them; plus ``max_size`` (bytes of all layers),
``max_category_bytes`` (final bytes per category) and ``forbidden_categories`` (no final byte of
these). A rule set to None is off. Imports only analyzer records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

PASS = "pass"
FAIL = "fail"
SKIP = "skip"


@dataclass(frozen=True)
class Thresholds:
    """What ``slimmer check`` enforces; None turns a rule off."""

    lowest_efficiency: float | None = 0.9
    highest_wasted_bytes: int | None = None
    highest_user_wasted_percent: float | None = 0.1
    max_size: int | None = None
    max_category_bytes: Mapping[str, int] = field(default_factory=dict)
    forbidden_categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict: ``status`` is pass, fail or skip (rule off)."""

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
        """True when no rule failed."""
        return all(r.status != FAIL for r in self.results)

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if r.status == FAIL)


def _bytes(n: float) -> str:
    n = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def check(analysis, thresholds: Thresholds, image: str = "") -> CheckResult:
    """Return the verdict of ``thresholds`` on ``analysis`` (a ``report.Analysis``)."""
    d = analysis.dive
    t = thresholds
    out = []

    def rule(name, actual, limit, failed, shown_actual, shown_limit, what):
        if limit is None:
            out.append(RuleResult(name, SKIP, actual, None, f"{what}: {shown_actual} (rule off)"))
            return
        verdict = FAIL if failed else PASS
        out.append(RuleResult(name, verdict, actual, limit, f"{what}: {shown_actual} "
                              f"({'must be' if failed else 'is'} {shown_limit})"))

    eff = d.efficiency
    rule("lowest_efficiency", eff, t.lowest_efficiency, t.lowest_efficiency is not None and eff < t.lowest_efficiency,
         f"{eff * 100:.2f} %", f">= {(t.lowest_efficiency or 0) * 100:.2f} %", "image efficiency (dive)")
    wb = d.wasted_bytes
    rule("highest_wasted_bytes", wb, t.highest_wasted_bytes,
         t.highest_wasted_bytes is not None and wb > t.highest_wasted_bytes, _bytes(wb),
         f"<= {_bytes(t.highest_wasted_bytes or 0)}", "wasted bytes (dive)")
    uw = d.user_wasted_percent
    rule("highest_user_wasted_percent", uw, t.highest_user_wasted_percent,
         t.highest_user_wasted_percent is not None and uw > t.highest_user_wasted_percent, f"{uw * 100:.2f} %",
         f"<= {(t.highest_user_wasted_percent or 0) * 100:.2f} %", "wasted share of the user layers (dive)")
    size = analysis.summary.total_size
    rule("max_size", size, t.max_size, t.max_size is not None and size > t.max_size, _bytes(size),
         f"<= {_bytes(t.max_size or 0)}", "image size (all layers)")
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
    return CheckResult(image, tuple(out))
