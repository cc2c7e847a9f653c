#!/usr/bin/env bash
# Install archsearch for development: the package with its test extras (torch/torchvision pinned by
# constraints.txt) and, when run as root on Debian/Ubuntu, the system packages three tests use:
# dataset-fashion-mnist (real data for the Fashion-MNIST reader), postgresql (the shared-queue worker
# test starts its own server) and chromium (the report's headless-browser test). Without root those
# tests skip and say why; everything else needs only pip.
set -euo pipefail
cd "$(dirname "$0")/.."
apt_install() {  # PACKAGE CHECK-COMMAND...: install PACKAGE unless CHECK succeeds; quiet; never fatal
    local pkg=$1; shift
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
        echo "note: $pkg not installed (needs root and apt-get); its tests will skip"; return 0
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null 2>&1; } \
        || echo "note: apt-get install $pkg failed; its tests will skip or fail"
}
apt_install dataset-fashion-mnist test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
apt_install postgresql sh -c 'ls /usr/lib/postgresql/*/bin/initdb'
apt_install chromium command -v chromium
python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
