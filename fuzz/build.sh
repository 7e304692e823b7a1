#!/usr/bin/env bash
# Builds every fuzz target. With a nightly toolchain this is a real instrumented `cargo fuzz build`
# (installing cargo-fuzz when missing); without one, the targets are still compiled on stable so
# they cannot rot. Either way a compile error fails the build.
set -euo pipefail
cd "$(dirname "$0")"
if cargo +nightly --version >/dev/null 2>&1; then
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
  fi
  cargo +nightly fuzz build
else
  echo "no nightly toolchain: compiling the fuzz targets on stable, uninstrumented"
  cargo build --locked
fi
