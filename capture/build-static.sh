#!/bin/sh
# Builds a fully static rdlv-snap (glibc, crt-static) that can be copied onto
# any x86-64 Linux host or into any container and run without libraries.
# Output: target/x86_64-unknown-linux-gnu/release-static/rdlv-snap
set -eu
cd "$(dirname "$0")/.."
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build -p rdlv-snap --profile release-static --target x86_64-unknown-linux-gnu
BIN=target/x86_64-unknown-linux-gnu/release-static/rdlv-snap
file "$BIN"
ls -l "$BIN"
