#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the report's browser check
# (tests/test_report_browser.py; skipped when no chromium binary exists).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y chromium fonts-dejavu-core
