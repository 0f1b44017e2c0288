#!/usr/bin/env bash
# Install the Debian packages the tests drive: graphviz (`dot`, for `show --format svg|png`
# and the DAG pictures in cards and notebook views), chromium (headless screenshots of
# cards) and chromium-driver (Selenium clicks through `metaflowlike ui`). Idempotent: does
# nothing when all are already there. Runs as root in CI.
set -euo pipefail
if command -v dot >/dev/null && command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends graphviz chromium chromium-driver fonts-dejavu-core >/dev/null
command -v dot >/dev/null || { echo "install-apt-tools: dot missing after apt-get install" >&2; exit 1; }
command -v chromium >/dev/null || { echo "install-apt-tools: chromium missing after apt-get install" >&2; exit 1; }
command -v chromedriver >/dev/null || { echo "install-apt-tools: chromedriver missing after apt-get install" >&2; exit 1; }
