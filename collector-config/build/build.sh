#!/usr/bin/env bash
# Build otelcol-spanlake (main.go + components.go, pinned by go.mod/go.sum) into a cache
# outside the repo, keyed by a hash of those files: an unchanged manifest reuses the build.
# Prints the binary's path on stdout (everything else goes to stderr).
# Needs Go >= the version in go.mod and the Go module proxy; nothing else is downloaded.
# --cached-only: print the cached binary, or exit 3 without building.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${SPANLAKE_CACHE:-$HOME/.cache/spanlake}/otelcol"
key="$(cd "$here" && cat go.mod go.sum main.go components.go | sha256sum | cut -c1-16)"
out="$cache/$key/otelcol-spanlake"
if [ -x "$out" ]; then
    echo "otelcol-spanlake: cached build $out" >&2
    echo "$out"
    exit 0
fi
if [ "${1:-}" = "--cached-only" ]; then
    echo "otelcol-spanlake: no cached build for this manifest (run $0)" >&2
    exit 3
fi
command -v go >/dev/null 2>&1 || { echo "otelcol-spanlake: no 'go' on PATH" >&2; exit 1; }
mkdir -p "$cache/$key"
start=$(date +%s)
echo "otelcol-spanlake: building into $cache/$key (cold: several minutes)" >&2
# -mod=readonly: go.sum pins every module; the build never edits go.mod.
(cd "$here" && GOFLAGS=-mod=readonly go build -trimpath -ldflags='-s -w' \
    -o "$out.tmp" .) >&2
mv "$out.tmp" "$out"
echo "otelcol-spanlake: built in $(( $(date +%s) - start )) s" >&2
echo "$out"
