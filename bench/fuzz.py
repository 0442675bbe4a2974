"""A longer fuzz run of the targets of tests/test_fuzz.py (tar structures, the default) and
tests/test_fuzz_json.py (the config and manifest JSON, ``--target json``).

    python bench/fuzz.py --seconds 600            # as long as asked, new seeds each round
    python bench/fuzz.py --target json --seconds 600
    python bench/fuzz.py --examples 5000 --shrink # stop at the first failure, shrunk by hypothesis

Without --shrink a failure does not stop the run: each distinct failure (exception type and the
innermost slimmer frame) is kept with the first input that caused it, and the run goes on. At the
end it prints how many inputs ran, how they ended (rejected by the reader, exported, export
refused) and every distinct failure with a reproducible spec. Every failure found belongs in
the hostile corpus (tests/hostile.py). Exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import time
import traceback
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

import test_fuzz
import test_fuzz_json
from hypothesis import given, seed, settings

TARGETS = {"tar": test_fuzz, "json": test_fuzz_json}


def _signature(err: BaseException) -> str:
    frame = traceback.extract_tb(err.__traceback__)[-1]
    detail = str(err).split("(")[0][:60] if isinstance(err, AssertionError) else ""
    return f"{type(err).__name__} at {Path(frame.filename).name}:{frame.lineno} in {frame.name} {detail}".strip()


def run(examples: int, rounds: int, seconds: float | None, shrink: bool, first_seed: int,
        target=test_fuzz) -> int:
    counts: collections.Counter = collections.Counter()
    failures: dict[str, tuple[dict, str]] = {}
    start = time.monotonic()
    round_no = 0
    while (seconds is None and round_no < rounds) or (seconds is not None and time.monotonic() - start < seconds):
        @seed(first_seed + round_no)
        @settings(max_examples=examples, derandomize=False, **test_fuzz.FUZZ_SETTINGS)
        @given(target.specs)
        def campaign(spec):
            counts["executions"] += 1
            try:
                counts[target.run_target(spec)] += 1
            except Exception as err:
                counts["failures"] += 1
                failures.setdefault(_signature(err), (spec, "".join(traceback.format_exception(err))))
                if shrink:
                    raise

        try:
            campaign()
        except Exception:  # noqa: BLE001
            if shrink:
                traceback.print_exc()
                break
        round_no += 1
        elapsed = time.monotonic() - start
        print(f"round {round_no}: {counts['executions']} executions in {elapsed:.0f} s "
              f"({counts['executions'] / elapsed:.0f}/s), {len(failures)} distinct failures", flush=True)
    elapsed = time.monotonic() - start
    print(f"\n{counts['executions']} executions in {elapsed:.0f} s")
    for outcome in ("rejected", "read", "exported", "export refused", "failures"):
        print(f"  {outcome:15} {counts[outcome]}")
    for sig, (spec, tb) in failures.items():
        print(f"\n== {sig}\nspec = {spec!r}\n{tb}")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="inputs per round (one hypothesis seed)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seconds", type=float, help="run rounds until this much time has passed")
    parser.add_argument("--seed", type=int, default=None, help="seed of the first round (random if not given)")
    parser.add_argument("--shrink", action="store_true", help="stop at the first failure and shrink it")
    parser.add_argument("--target", choices=sorted(TARGETS), default="tar", help="what to fuzz")
    args = parser.parse_args()
    os.environ.setdefault("SLIMMER_CACHE_DIR", "/tmp/slimmer-fuzz-cache")
    first = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"first seed {first}")
    sys.exit(run(args.examples, args.rounds, args.seconds, args.shrink, first, TARGETS[args.target]))


if __name__ == "__main__":
    main()
