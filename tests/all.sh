#!/usr/bin/env bash
# Every test: the workspace's unit tests and the end-to-end suite (captures
# with the default, --precopy), then the end-to-end suite twice more, with
# every capture taken by `rdlv-snap --cow` and by `rdlv-snap --no-precopy`, so
# that every oracle test also holds for the other two capture methods. Tests
# that choose the method themselves (cow::, precopy::, churn::precopy_,
# container::, whose captures also run inside containers) and the
# unprivileged-user test (method-independent) run in the first pass only.
# The heap and export tests (analyzer features on snapshots from the default
# capture; about 20 minutes between them) also run in the first pass only,
# to keep CI within its time budget: the stacks and values oracles already
# show that the analyzer sees no difference between capture methods. So does
# the real-server comparison with Delve (realserver::), which freezes the
# server with SIGSTOP for rdlv-snap and gcore alike.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace
skip=(--skip cow:: --skip precopy:: --skip churn::precopy_ --skip container:: --skip capture::unprivileged
      --skip heap:: --skip export:: --skip realserver::)
echo "== e2e again, every capture with --cow"
RDLV_SNAP=$PWD/tests/cow/rdlv-snap cargo test -p rdlv-e2e --test e2e -- "${skip[@]}"
echo "== e2e again, every capture with --no-precopy"
RDLV_SNAP=$PWD/tests/plain/rdlv-snap cargo test -p rdlv-e2e --test e2e -- "${skip[@]}"
