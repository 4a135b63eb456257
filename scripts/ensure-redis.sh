#!/usr/bin/env bash
# The rate limit tests and the chart's live check run a real Redis-compatible server (the chart deploys
# Valkey; Debian's redis-server takes the same options): install Debian's `redis-server` package when
# neither is there. The tests start their own server on a free port; the packaged one is not wanted.
set -euo pipefail
if command -v valkey-server >/dev/null || command -v redis-server >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "redis-server missing: run 'sudo apt-get install -y --no-install-recommends redis-server'" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server > /dev/null
if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
  systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
