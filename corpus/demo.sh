#!/usr/bin/env bash
# The bundled example: build rdlv, start a Go program with goroutines parked in
# many states, capture it with rdlv-snap, and look at the snapshot offline.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
echo "== building rdlv and rdlv-snap (release)"
cargo build --release -q -p rdlv-snap -p rdlv-analyze
mkdir -p target/demo
echo "== building corpus/cmd/parked with $(go version)"
(cd corpus && go build -o ../target/demo/parked ./cmd/parked)

oracle=$(mktemp -d)
fifo="$oracle/stdout"
mkfifo "$fifo"
ORACLE_DIR="$oracle" target/demo/parked >"$fifo" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$oracle"' EXIT
read -r ready _ <"$fifo"
[ "$ready" = READY ] || { echo "demo program did not start" >&2; exit 1; }

snap=target/demo/parked.snap
echo "== rdlv-snap $pid -o $snap"
target/release/rdlv-snap "$pid" -o "$snap" --force
echo
echo "== rdlv info $snap"
target/release/rdlv info "$snap" | head -30
echo
echo "== rdlv goroutines $snap --group"
target/release/rdlv goroutines "$snap" --group
echo
echo "== rdlv bt $snap 1"
target/release/rdlv bt "$snap" 1
