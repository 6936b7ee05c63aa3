#!/usr/bin/env bash
# `make demo`: the main job end to end on the bundled smoke tasks, with the best
# backend available (docker when a daemon answers, else local):
# images -> oracle agent run graded by the evaluator -> report (table + HTML)
# -> many attempts of a stochastic oracle -> the pass@k curve and best-of-n selection.
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
ATTEMPTS=${SWERVE_DEMO_ATTEMPTS:-4}
echo "== $ATTEMPTS attempts per task of oracle-stochastic:p=0.5: pass@k and choosing the best patch"
$SWERVE run --tasks "$TASKS" --policy oracle-stochastic:p=0.5 --attempts "$ATTEMPTS" --backend "$backend" \
  --workers 2 --evaluate --no-progress --out "$OUT-attempts"
$SWERVE select "$OUT-attempts" --tasks "$TASKS" --strategy tests,consensus --backend "$backend" --workers 2
$SWERVE report "$OUT-attempts" --html "$OUT-attempts/report.html"
echo "== pass@k curve: $OUT-attempts/report.html"
