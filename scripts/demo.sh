#!/usr/bin/env bash
# `make demo`: the main job end to end on the bundled smoke tasks, with the best
# backend available (docker when a daemon answers, else local):
# images -> oracle agent run graded by the evaluator -> report (table + HTML).
set -euo pipefail
cd "$(dirname "$0")/.."
SWERVE=.venv/bin/swerve
TASKS=${SWERVE_DEMO_TASKS:-examples/smoke.jsonl}
OUT=${SWERVE_DEMO_OUT:-runs/demo}
backend=$(.venv/bin/python -c 'from swerve.environments import pick_backend; print(pick_backend("auto"))')
echo "== swerve demo: $TASKS on the $backend backend"
if [ "$backend" = docker ]; then
  $SWERVE images build --tasks "$TASKS"
fi
$SWERVE run --tasks "$TASKS" --policy oracle --backend "$backend" --workers 2 --evaluate --out "$OUT"
$SWERVE report "$OUT" --tasks "$TASKS" --html "$OUT/report.html"
echo "== report: $OUT/report.html (open it in a browser; it needs no server)"
