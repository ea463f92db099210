#!/usr/bin/env bash
# Install what the dashboard browser test needs, idempotently: Debian's Chromium (never a browser
# downloaded by Playwright) and the Playwright Python package in the project's virtualenv.
# Usage: scripts/install-browser.sh [VENV]   (default: .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "no virtualenv at $VENV: create it first (make venv)" >&2
    exit 1
fi

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/lib/chromium/chromium ]; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if ! "$VENV/bin/python" -c "import playwright" >/dev/null 2>&1; then
    # The Python package only: no `playwright install`, the test drives /usr/bin/chromium.
    "$VENV/bin/pip" install -q "playwright>=1.45"
fi

echo "browser ready: $(command -v chromium || echo /usr/lib/chromium/chromium)"
