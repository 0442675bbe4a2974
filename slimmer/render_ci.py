"""Rendering of a ``slimmer check`` verdict for CI systems: text, JUnit XML and SARIF 2.1.0.
Knows nothing of archives; the CLI picks the renderer."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from slimmer import __version__
from slimmer.analyzer.findings import DESCRIPTIONS
from slimmer.analyzer.gate import FAIL, SKIP, CheckResult
from slimmer.errors import OutputError

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
RULE_HELP = {
    "lowest_efficiency": "The image's efficiency as dive computes it must not fall below the limit.",
    "highest_wasted_bytes": "Bytes of paths found in several layers (dive's wasted bytes) must stay under the limit.",
    "highest_user_wasted_percent": "Wasted bytes as a share of all layers but the base must stay under the limit.",
    "max_size": "The bytes of all layers must stay under the limit.",
    "max_category_bytes": "The final bytes of a category must stay under its limit.",
    "forbidden_categories": "The final filesystem must hold no byte of a forbidden category.",
}


def check_text(result: CheckResult) -> str:
    """Return one line per rule and a verdict line."""
    lines = []
    for r in result.results:
        mark = {FAIL: "FAIL", SKIP: "SKIP"}.get(r.status, "PASS")
        lines.append(f"{mark}  {r.rule:<34} {r.message}")
    failed = len(result.failures)
    lines.append(f"{'FAILED' if failed else 'PASSED'}: {failed} of "
                 f"{sum(1 for r in result.results if r.status != SKIP)} rules failed for {result.image}")
    return "\n".join(lines)


def check_json(result: CheckResult) -> dict:
    """Return the JSON object of a verdict (schema ``slimmer.check/1``)."""
    return {"schema": "slimmer.check/1", "image": result.image, "passed": result.passed,
            "rules": [{"rule": r.rule, "status": r.status, "actual": r.actual, "limit": r.limit,
                       "message": r.message} for r in result.results]}


def junit_xml(result: CheckResult) -> str:
    """Return the verdict as a JUnit XML report: one test case per rule."""
    cases = result.results
    failures = len(result.failures)
    skipped = sum(1 for r in cases if r.status == SKIP)
    suites = ET.Element("testsuites", name="slimmer check", tests=str(len(cases)), failures=str(failures),
                        errors="0", skipped=str(skipped))
    suite = ET.SubElement(suites, "testsuite", name=f"slimmer check {result.image}", tests=str(len(cases)),
                          failures=str(failures), errors="0", skipped=str(skipped))
    for r in cases:
        case = ET.SubElement(suite, "testcase", classname="slimmer.check", name=r.rule)
        if r.status == FAIL:
            fail = ET.SubElement(case, "failure", message=r.message, type="threshold")
            fail.text = f"{r.message}\nactual: {r.actual}\nlimit: {r.limit}"
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


def write_text(path: str | Path, text: str, what: str) -> Path:
    """Write ``text`` to ``path`` atomically; raise OutputError naming ``what`` on failure."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as err:
        raise OutputError(f"cannot write the {what} to {path}: {err.strerror}") from err
    return path


def write_junit(result: CheckResult, path: str | Path) -> Path:
    """Write the JUnit XML report to ``path``."""
    return write_text(path, junit_xml(result), "JUnit report")


def write_sarif(result: CheckResult, path: str | Path, findings=()) -> Path:
    """Write the SARIF log to ``path``."""
    return write_text(path, json.dumps(sarif(result, findings), indent=2) + "\n", "SARIF report")
