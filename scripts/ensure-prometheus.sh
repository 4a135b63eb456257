#!/usr/bin/env bash
# The Helm chart's tests need promtool (rule checks) and a real Prometheus server (live PromQL test):
# install Debian's `prometheus` package when either is missing. The tests start their own server.
set -euo pipefail
if command -v promtool >/dev/null && [ -x /usr/bin/prometheus ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "promtool/prometheus missing: run 'sudo apt-get install -y --no-install-recommends prometheus'" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus > /dev/null
# Debian starts the packaged server where an init system runs; the tests do not want it.
if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
