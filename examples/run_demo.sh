#!/usr/bin/env bash
# The main job: install spanlake into .venv (first run only), run the demo agent zero-code
# into the embedded default store (./spanlake.db), list its traces, show one as a tree.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/spanlake ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[anthropic]'
fi
export OTEL_TRACES_EXPORTER=spanlake SPANLAKE_EXPERIMENT=demo OTEL_SERVICE_NAME=weather-agent
.venv/bin/opentelemetry-instrument .venv/bin/python examples/agent_demo.py
echo
.venv/bin/spanlake traces list --experiment demo --max-results 3
echo
trace_id=$(.venv/bin/spanlake traces list --experiment demo --max-results 1 --format json \
  | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)[0]["trace_id"])')
.venv/bin/spanlake traces get "$trace_id"
