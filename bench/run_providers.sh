#!/usr/bin/env bash
# Provider instrumentation overhead bench: builds its own venv (peers and MLflow never go into
# the dev venv), then runs bench/bench_providers.py with any arguments given here, e.g.
#   bash bench/run_providers.sh                       # anthropic, all configurations
#   bash bench/run_providers.sh --provider anthropic,openai --rounds 60
# Env: BENCH_VENV (default /work/bench-venv-h8), BENCH_PYTHON (interpreter for the venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQ="$ROOT/bench/requirements-providers.txt"
VENV="${BENCH_VENV:-/work/bench-venv-h8}"
PY="${BENCH_PYTHON:-$(command -v python3.11 || command -v python3)}"
STATUS="$VENV/peer-install-status.tsv"
STAMP="$VENV/.requirements-providers.sha256"

want="$(cat "$REQ" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
    echo "== building bench venv $VENV" >&2
    [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q -U pip >&2
    # Base block: every non-comment line before the "--- peers" marker.
    base="$(sed -n '/^# --- peers/q;/^[^#[:space:]]/p' "$REQ")"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install -q -e "$ROOT[anthropic,openai]" $base >&2
    constraints="$VENV/constraints.txt"
    "$VENV/bin/pip" freeze 2>/dev/null \
        | grep -iE '^(anthropic|openai|httpx2|opentelemetry-(api|sdk|instrumentation|semantic-conventions))==' \
        >"$constraints"
    : >"$STATUS"
    # Each peer on its own, pinned to the base block's SDK versions, so one that cannot install
    # (or wants another SDK) is recorded and the others still run.
    sed -n '/^# --- peers/,$p' "$REQ" | grep -E '^[^#[:space:]]' | while read -r peer; do
        first="${peer%% *}"
        name="${first%%[=<>]*}"
        # shellcheck disable=SC2086  # a line may carry extra pins
        if out="$("$VENV/bin/pip" install -q -c "$constraints" $peer 2>&1)"; then
            printf '%s\tok\n' "$name" >>"$STATUS"
        else
            reason="$(printf '%s' "$out" | grep -E '^ERROR' | tail -1 | tr '\t\n' '  ')"
            printf '%s\tinstall failed: %s\n' "$name" "${reason:-see pip output}" >>"$STATUS"
            echo "== $peer did not install: $reason" >&2
        fi
    done
    echo "$want" >"$STAMP"
fi

cd "$ROOT"
BENCH_INSTALL_STATUS="$STATUS" exec "$VENV/bin/python" bench/bench_providers.py "$@"
