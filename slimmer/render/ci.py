"""A ``slimmer check`` verdict for CI systems: JUnit XML and SARIF 2.1.0 (written where
``slimmer.outputs`` says). The verdict's text and JSON are in ``render.text`` and
``render.json``. Knows nothing of archives; the CLI picks the renderer."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from slimmer import __version__
from slimmer.analyzer.findings import DESCRIPTIONS
from slimmer.analyzer.gate import FAIL, MISCONFIGURED, SKIP, CheckResult
from slimmer.render import safe
from slimmer.render.json import dumps

__all__ = ["junit_xml", "sarif", "sarif_text"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
RULE_HELP = {
    "lowest_efficiency": "The image's efficiency as dive computes it must not fall below the limit.",
    "highest_wasted_bytes": "Bytes of paths found in several layers (dive's wasted bytes) must stay under the limit.",
    "highest_user_wasted_percent": "Wasted bytes as a share of all layers but the base must stay under the limit.",
    "max_size": "The bytes of all layers must stay under the limit.",
    "max_category_bytes": "The final bytes of a category must stay under its limit.",
    "forbidden_categories": "The final filesystem must hold no byte of a forbidden category.",
    "max_true_waste": "Bytes stored in a layer but gone from the final filesystem must stay under the limit.",
    "max_could_save": "What slimming could save must stay under the limit.",
    "max_finding_bytes": "What fixing one kind of finding could save must stay under its limit.",
    "forbidden_findings": "No finding of a forbidden kind may be reported.",
}


def junit_xml(result: CheckResult) -> str:
    """Return the verdict as a JUnit XML report: one test case per rule."""
    cases = result.results
    failures = sum(1 for r in cases if r.status == FAIL)
    errors = sum(1 for r in cases if r.status == MISCONFIGURED)
    skipped = sum(1 for r in cases if r.status == SKIP)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": str(errors), "skipped": str(skipped)}
    suites = ET.Element("testsuites", {"name": "slimmer check", **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": f"slimmer check {safe(result.image)}", **counts})
    for r in cases:
        case = ET.SubElement(suite, "testcase", classname="slimmer.check", name=r.rule)
        if r.status == FAIL:
            fail = ET.SubElement(case, "failure", message=safe(r.message), type="threshold")
            fail.text = f"{safe(r.message)}\nactual: {r.actual}\nlimit: {r.limit}"
        elif r.status == MISCONFIGURED:
            ET.SubElement(case, "error", message=safe(r.message), type="misconfigured").text = safe(r.message)
        elif r.status == SKIP:
            ET.SubElement(case, "skipped", message="rule off")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def sarif(result: CheckResult, findings=()) -> dict:
    """Return the verdict as a SARIF 2.1.0 log: a failed rule is an error; each finding of the
    analysis (``findings``) is a note carrying the bytes its fix would save."""
    rules, ids = [], set()

    def rule_id(name: str, text: str) -> str:
        if name not in ids:
            ids.add(name)
            rules.append({"id": name, "name": name, "shortDescription": {"text": text}})
        return name

    location = [{"physicalLocation": {"artifactLocation": {"uri": Path(result.image).as_posix() or "image"}}}]
    results = []
    for r in result.failures:
        base = r.rule.split(".")[0]
        results.append({"ruleId": rule_id(r.rule, RULE_HELP.get(base, r.rule)), "level": "error",
                        "message": {"text": r.message}, "locations": location,
                        "properties": {"actual": r.actual, "limit": r.limit}})
    for f in findings:
        results.append({"ruleId": rule_id(f"finding/{f.id}", DESCRIPTIONS.get(f.id, f.id)), "level": "note",
                        "message": {"text": f"{f.title} (could save {f.savings_bytes} bytes). {f.advice}"},
                        "locations": location, "properties": {"savings_bytes": f.savings_bytes, "fix": f.fix}})
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "slimmer", "version": __version__, "rules": rules}},
                      "results": results}]}


def sarif_text(result: CheckResult, findings=()) -> str:
    """Return the SARIF log as text (ASCII JSON and a line feed)."""
    return dumps(sarif(result, findings)) + "\n"
