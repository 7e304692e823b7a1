#!/usr/bin/env bash
# The browser end-to-end test: the demo page and the browser client in headless Chromium.
#   bash tests/browser/run.sh
# Installs Chromium (Debian's package) if missing, installs playwright-core (npm ci) if
# node_modules is missing or outdated, builds the demo (`cargo build --release --bin demo`,
# unless DEMO_BIN names a built one), then runs the test with Node's test runner.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

step() { printf '\n==> %s\n' "$*"; }

if [ ! -x /usr/bin/chromium ]; then
  step "installing chromium"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
/usr/bin/chromium --version 2>/dev/null || true

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  step "installing node and npm"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "error: node $(node --version) is too old: playwright-core needs node 20 or later" >&2
  exit 1
fi

cd "$here"
# node_modules is up to date when it holds exactly the version package-lock.json pins.
pinned="$(node -p 'require("./package-lock.json").packages["node_modules/playwright-core"].version')"
installed="$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch { "" }')"
if [ "$installed" != "$pinned" ]; then
  step "npm ci (playwright-core $pinned)"
  npm ci --no-audit --no-fund
fi

if [ -n "${DEMO_BIN:-}" ]; then
  step "using the demo at $DEMO_BIN"
else
  step "cargo build --release --bin demo"
  (cd "$root" && cargo build --release --locked --bin demo)
  # CARGO_TARGET_DIR (or cargo's config) decides where it went: ask cargo.
  target="$(cd "$root" && cargo metadata --format-version 1 --no-deps |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).target_directory))')"
  DEMO_BIN="$target/release/demo"
fi
export DEMO_BIN

# The same test against each runtime the demo can serve on.
for runtime in ${DEMO_RUNTIMES:-tokio smol}; do
  step "node --test (headless Chromium, demo on $runtime)"
  DEMO_RUNTIME="$runtime" node --test demo.test.mjs
done
