#!/usr/bin/env bash
# Install archsearch for development: the package with its test extras (torch/torchvision pinned by
# constraints.txt) and, when run as root on Debian/Ubuntu, the system packages three tests use:
# dataset-fashion-mnist (real data for the Fashion-MNIST reader), postgresql (the shared-queue worker
# test starts its own server) and chromium (the report's headless-browser test). Without root those
# tests skip and say why; everything else needs only pip.
#
# It says what it does, one line a step with the step's time; the tools' own output goes to a log
# (ARCHSEARCH_INSTALL_LOG, default a temporary file) whose path is printed when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG=${ARCHSEARCH_INSTALL_LOG:-$(mktemp -t archsearch-install.XXXXXX.log)}
START=$SECONDS
step() { printf '[%3ds] %s\n' "$((SECONDS - START))" "$*"; }

apt_install() {  # PACKAGE WHY CHECK-COMMAND...: install PACKAGE unless CHECK succeeds; never fatal
    local pkg=$1 why=$2; shift 2
    if "$@" >/dev/null 2>&1; then step "$pkg: already installed ($why)"; return 0; fi
    if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
        step "$pkg: not installed (needs root and apt-get); the tests of $why will skip"; return 0
    fi
    step "$pkg: installing with apt-get ($why) ..."
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >>"$LOG" 2>&1 \
        || { apt-get update -q >>"$LOG" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >>"$LOG" 2>&1; }; then
        step "$pkg: done"
    else
        step "$pkg: apt-get install failed (log: $LOG); the tests of $why will skip or fail"
    fi
}

step "archsearch install: system packages for three optional tests, then the Python package (log: $LOG)"
apt_install dataset-fashion-mnist "the Fashion-MNIST reader" test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
apt_install postgresql "the shared PostgreSQL queue" sh -c 'ls /usr/lib/postgresql/*/bin/initdb'
apt_install chromium "the report in a real browser" command -v chromium
step "python: installing archsearch and its test extras with pip (torch $(sed -n 's/^torch==//p' constraints.txt) pinned by constraints.txt) ..."
if ! python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]" >>"$LOG" 2>&1; then
    step "pip install failed; the last lines of $LOG:"
    tail -n 20 "$LOG" >&2
    exit 1
fi
step "python: done ($(python -c 'import archsearch, torch; print(f"archsearch {archsearch.__version__}, torch {torch.__version__}")'))"
step "installed; run the tests with: python -m pytest"
