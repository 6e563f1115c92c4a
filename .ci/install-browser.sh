#!/usr/bin/env bash
# What the browser test (tests/test_browser.py) needs beyond the Python environment: Debian's Chromium,
# which Playwright for Python drives through executable_path (no browser download at run time).
# Exit 0: Chromium is there. Exit 3: it cannot be installed here (no apt-get, or neither root nor sudo);
# the test then skips. An apt-get failure is an error.
set -euo pipefail
CHROMIUM="${ENTROPYLAB_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    echo "browser test: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser test: no apt-get here; install Chromium and set ENTROPYLAB_CHROMIUM to run it" >&2
    exit 3
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        echo "browser test: not root and no passwordless sudo; cannot apt-get install chromium" >&2
        exit 3
    fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core fonts-liberation
echo "browser test: $("$CHROMIUM" --version)"
