#!/usr/bin/env bash
# The web demo's browser test drives headless Chromium through Selenium: install Debian's `chromium`
# and `chromium-driver` packages when the browser or its driver is missing.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "chromium/chromedriver missing: run 'sudo apt-get install -y --no-install-recommends chromium chromium-driver'" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver > /dev/null
