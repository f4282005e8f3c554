#!/usr/bin/env bash
# The OHIF viewer at /viewer/ in headless Chromium (viewer_ohif.mjs beside this file). Skipped
# (exit 77) only when what scripts/setup installs is missing: the chromium package, or the
# viewer's npm packages and prepared build (viewer/node_modules, viewer/dist).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="${AHILITE_SRC:-$(cd "$here/../.." && pwd)}"
chromium="${AHILITE_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "skipped: no $chromium (scripts/setup installs the chromium package)"
  exit 77
fi
if [ ! -d "$src/viewer/node_modules/puppeteer-core" ] || [ ! -f "$src/viewer/dist/index.html" ]; then
  echo "skipped: no viewer/node_modules or viewer/dist (scripts/setup runs npm ci in viewer/)"
  exit 77
fi
exec node "$here/viewer_ohif.mjs"
