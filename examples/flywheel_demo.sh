#!/usr/bin/env bash
# The data flywheel end to end, small enough for a laptop CPU (a few minutes on 2 cores):
#   tao serve → traffic through the openai client → tao flywheel (round 1) → more traffic → tao flywheel (round 2)
#   → the decisions, the served version, the inference table by model version → tao rollback.
# Model: a tiny random Llama (MODEL=bundled or a model folder to use a real one; then edit the reward).
# Usage: examples/flywheel_demo.sh            (env: PYTHON, PORT, WORK, MODEL)
# Python: $PYTHON if set, else the project's .venv (built by `make test`), else a python3 on PATH that has opentao.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
elif [ -x .venv/bin/python ]; then
  PY=$PWD/.venv/bin/python
else
  PY=$(command -v python3 || command -v python || true)
fi
if [ -z "$PY" ] || ! "$PY" -c "import opentao, fastapi, httpx" 2>/dev/null; then
  echo "error: no Python with opentao and httpx (tried ${PY:-nothing}): run 'make test' to build .venv," \
       "or set PYTHON=/path/to/python" >&2
  exit 2
fi
TAO=("$PY" -c "from opentao.cli import main; main()")
quiet() { grep -v -E "it/s\]|examples/s\]|Warning|warnings.warn|^\{'" || true; }  # trainer chatter
WORK=${WORK:-$(mktemp -d /tmp/flywheel-demo.XXXXXX)}
mkdir -p "$WORK"
DIR=$WORK/flywheel
PORT=${PORT:-8765}
URL=http://127.0.0.1:$PORT
MODEL=${MODEL:-}
if [ -z "$MODEL" ]; then
  MODEL=$WORK/tiny-llama
  "$PY" -c "from opentao.testing import tiny_random_llama as t; t('$MODEL', init_scale=0.2)" \
    >"$WORK/model.log" 2>&1 || { cat "$WORK/model.log" >&2; exit 1; }
fi
say() { printf '\n== %s\n' "$*"; }
version() { "$PY" -c "import httpx; print(httpx.get('$URL/health').json()['model_version'])"; }

say "1. an API key for the demo client (only its SHA-256 is stored in $DIR/keys.json)"
KEY=$("${TAO[@]}" keys add demo --dir "$DIR")
echo "key id 'demo': ${KEY:0:12}…"

say "2. tao serve --model $(basename "$MODEL") --dir $DIR --port $PORT"
"${TAO[@]}" serve --model "$MODEL" --dir "$DIR" --port "$PORT" --reload-s 1 >"$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill -INT $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  "$PY" -c "import httpx; httpx.get('$URL/health').raise_for_status()" 2>/dev/null && break
  kill -0 $SERVER 2>/dev/null || { cat "$WORK/serve.log"; exit 1; }
  sleep 0.2
done
grep -h "^serving" "$WORK/serve.log" || true
echo "no key → HTTP $("$PY" -c "import httpx; print(httpx.post('$URL/v1/chat/completions', json={}).status_code)")"

say "3. traffic: the first 12 prompts of examples/flywheel_prompts.jsonl, twice (duplicates are dropped later)"
"$PY" examples/flywheel_traffic.py --base-url "$URL/v1" --key "$KEY" --prompts examples/flywheel_prompts.jsonl \
  --rows 0:12 --repeat 2

say "4. tao flywheel (round 1): export → TAO round → reward gate → promote?"
"${TAO[@]}" flywheel -c examples/flywheel-demo.yaml --dir "$DIR" 2>&1 | quiet
sleep 2
echo "served version now: $(version)"

say "5. more traffic: the other 12 prompts"
"$PY" examples/flywheel_traffic.py --base-url "$URL/v1" --key "$KEY" --prompts examples/flywheel_prompts.jsonl \
  --rows 12:24

say "6. tao flywheel (round 2)"
"${TAO[@]}" flywheel -c examples/flywheel-demo.yaml --dir "$DIR" 2>&1 | quiet
sleep 2
echo "served version now: $(version)"

say "7. tao decisions"
"${TAO[@]}" decisions --dir "$DIR"

say "8. the inference table by model version (its Parquet parts + the live WAL)"
"$PY" - "$DIR" <<'PY'
import collections, sys
from opentao.serve.log import read_rows
rows = read_rows(sys.argv[1])
print(f"{len(rows)} rows:", dict(collections.Counter((r["model_version"], r["status"]) for r in rows)))
PY

say "9. tao rollback"
"${TAO[@]}" rollback --dir "$DIR" --reason "demo" || true
sleep 2
echo "served version now: $(version)"
echo
echo "work directory: $WORK"
