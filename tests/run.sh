#!/usr/bin/env bash
# Install what the tests need (Debian packages and Python packages), then run the whole suite.
# The audit tests start their own servers from these packages (docker-registry, a private
# PostgreSQL cluster, a Dask scheduler and workers), on 127.0.0.1, and stop them. The page tests
# drive Debian's chromium with Playwright (from the test extras; its browsers are never
# downloaded: the tests start /usr/bin/chromium).
#   bash tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(skopeo umoci libmagic1 chromium python3-minimal docker-registry postgresql util-linux tmux strace)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# builds the compiled tar scanner where a C compiler is present (optional: setup.py)
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 python3 -m pip install -q --disable-pip-version-check -e ".[test]"
# lint and types first: both are configured in pyproject.toml and must be clean
python3 -m ruff check slimmer tests bench
python3 -m mypy
# the whole suite with the compiled scanner (where it was built) ...
python3 -m pytest -q -p no:cacheprovider "$@"
# ... and again with the pure-Python fallback the tests that read archives the most ways:
# the equality tests, every format, the hostile corpus, pipes, streams, the fuzzer, and the
# merged filesystem (whose stacking loop is compiled too)
if [ $# -eq 0 ]; then
  SLIMMER_PURE=1 python3 -m pytest -q -p no:cacheprovider tests/test_compiled.py tests/test_formats.py \
    tests/test_hostile.py tests/test_one_pass.py tests/test_streams.py tests/test_fuzz.py tests/test_inputs.py \
    tests/test_outer.py tests/test_layers.py tests/test_waste.py tests/test_export.py
fi
