#!/bin/sh
# Builds the rdlv-snap container image (capture/Dockerfile): FROM scratch plus
# the static binary of capture/build-static.sh. No registry is contacted.
# Usage: capture/build-image.sh [TAG]   (default TAG: rdlv-snap:VERSION, also tagged rdlv-snap:latest)
# Environment: DOCKER (default docker), RDLV_SNAP_STATIC (use this static binary
# instead of building one).
set -eu
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-docker}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
tag=${1:-rdlv-snap:$version}
if [ -n "${RDLV_SNAP_STATIC:-}" ]; then
    bin=$RDLV_SNAP_STATIC
else
    sh capture/build-static.sh >&2
    bin=target/x86_64-unknown-linux-gnu/release-static/rdlv-snap
fi
# The binary must run with no library at all: the image holds nothing else.
if ! file "$bin" | grep -q 'static'; then
    echo "build-image: $bin is not a static binary; build it with capture/build-static.sh" >&2
    exit 1
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp capture/Dockerfile "$ctx/Dockerfile"
cp "$bin" "$ctx/rdlv-snap"
# The legacy builder needs nothing but the daemon (BuildKit may want a
# frontend image from a registry for some Dockerfiles).
DOCKER_BUILDKIT=0 "$DOCKER" build --quiet -t "$tag" "$ctx" >&2
if [ -z "${1:-}" ]; then
    "$DOCKER" tag "$tag" rdlv-snap:latest
fi
echo "$tag"
