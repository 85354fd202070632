#!/usr/bin/env bash
# Issue 10's GPU run, one prepared command: `darc-bridge train recipe --preset mini --scale full`
# on one GPU (docs/training.md, "GPU runs"), results copied into $OUT (at most 8 files):
#   lm.safetensors, codec.safetensors, darc.json   the model (fp16): the shipped folder when the gate
#                                                  passed, else the latest DARC checkpoint (base if DARC
#                                                  never started) written the same way, so a later run
#                                                  can resume from it (`RESUME=that folder`)
#   gate.md, gate.json                             the gate's report and figures (when the gate ran)
#   recipe.json                                    the recipe's command, scale, data seed, steps trained
#   summary.txt                                    machine, status, stage times, loss histories
#   recipe.log                                     the run's log (its tail)
# Usage (from the repository root; build/pack.npz made beforehand with `darc-bridge data pack`):
#   OUT=/some/dir scripts/gpu_train_model.sh            # GPU machine: full scale on cuda, fails without it
#   OUT=/some/dir scripts/gpu_train_model.sh --cpu      # dry run here: smoke scale on the CPU, same steps
#   ... --scale SCALE                                   # another scale (smoke, cpu, full)
# Environment: PYTHON (default .venv/bin/python, else python3); PACK (build/pack.npz); WORK (the
# recipe's work folder, default build/recipe-mini-gpu); RESUME (a model folder to continue, default
# models/darc-mini when it exists; RESUME=none starts over); RECIPE_LIMIT (seconds the recipe may run,
# default 520: the device call's 600 s less start-up and copying); BUDGET_MIN (the recipe's time
# budget in minutes, default 5 at full scale: training ends by 0.8 x budget + 1 min, about 300 s, so
# the guidance stage (8 validation cases x 3 coefficients) and the 32-case gate have about 220 s
# before RECIPE_LIMIT; the scale's own 9 minutes would leave them under a minute). A .gpu_site/ folder (scripts/gpu_site.sh) supplies the packages the GPU image lacks.
# Exit status: 0 gate passed (model in $OUT), 7 gate failed or not reached (checkpoint in $OUT),
# 124 the recipe ran out of RECIPE_LIMIT (checkpoint in $OUT), 2 bad input, 3 cuda expected and
# missing, 6 the code does not import, else the recipe's own status.
set -u -o pipefail

MODE=cuda
SCALE=
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) MODE=cpu ;;
    --scale) SCALE=${2:-}; shift ;;
    *) echo "usage: OUT=DIR $0 [--cpu] [--scale smoke|cpu|full]" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$SCALE" ]; then if [ "$MODE" = cpu ]; then SCALE=smoke; else SCALE=full; fi; fi
OUT=${OUT:-$(mktemp -d /tmp/gpu_train_model.XXXXXX)}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || exit 2
cd "$(dirname "$0")/.." || exit 2
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
PACK=${PACK:-build/pack.npz}
WORK=${WORK:-build/recipe-mini-gpu}
RECIPE_LIMIT=${RECIPE_LIMIT:-520}
if [ -z "${BUDGET_MIN+x}" ] && [ "$SCALE" = full ]; then BUDGET_MIN=5; fi
BUDGET_MIN=${BUDGET_MIN:-}
if [ -z "${RESUME+x}" ] && [ -f models/darc-mini/darc.json ]; then RESUME=models/darc-mini; fi
RESUME=${RESUME:-none}
# The files that come back (the device tool returns at most 8)
MODEL_FILES="lm.safetensors codec.safetensors darc.json gate.md gate.json recipe.json"
SUMMARY=$OUT/summary.txt
LOG=$WORK.log
note() { echo "$*" | tee -a "$SUMMARY"; }
: > "$SUMMARY"
note "gpu_train_model mode=$MODE scale=$SCALE start=$(date -u +%FT%TZ) python=$PY work=$WORK resume=$RESUME" \
  "limit=${RECIPE_LIMIT}s budget_min=${BUDGET_MIN:-scale}"

if [ ! -f "$PACK" ]; then
  note "FAIL: sample pack $PACK not found: build it where hydrogen-drumkits is installed" \
    "(darc-bridge data pack --out build/pack.npz) and carry it"
  exit 2
fi
if [ "$RESUME" != none ] && [ ! -f "$RESUME/darc.json" ]; then
  note "FAIL: RESUME=$RESUME is not a model folder (no darc.json)"; exit 2
fi

# .gpu_site/ (scripts/gpu_site.sh, carried): what the GPU image lacks (scripts/gpu_site_path.sh)
. scripts/gpu_site_path.sh
gpu_site_path "${TMPDIR:-/tmp}/darc_gpu_site_train" || { note "FAIL: installing .gpu_site/whl"; exit 2; }
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

# -- the machine -------------------------------------------------------------------------------------
{
  if command -v nvidia-smi >/dev/null; then nvidia-smi -L; else echo "nvidia-smi: not available"; fi
  "$PY" -c "import torch, platform, os; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '', \
'python', platform.python_version(), 'cpus', os.cpu_count())"
} 2>&1 | tee -a "$SUMMARY"
if [ "$MODE" = cuda ]; then
  if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
    note "FAIL: cuda expected but torch sees no GPU; nothing was run (--cpu is the dry run)"
    exit 3
  fi
  DEVICE=cuda
else
  DEVICE=cpu
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fi
if ! "$PY" -c "import darc_bridge.compat as c; c.import_audiocraft(); import darc_bridge.train.recipe, \
darc_bridge.train.codec, darc_bridge.train.cache, darc_bridge.train.gate, darc_bridge.data.kit_corpus, \
darc_bridge.eval.runner, darc_bridge.cli.main, audiocraft.losses, librosa, sklearn, soundfile, mir_eval, \
matplotlib, tqdm, omegaconf" > "$OUT/recipe.log" 2>&1; then
  tail -n 5 "$OUT/recipe.log"
  note "FAIL: the code does not import here (see recipe.log; scripts/gpu_site.sh prepares what the GPU image lacks)"
  exit 6
fi

# -- the recipe ----------------------------------------------------------------------------------------
rm -rf "$WORK/shipped" "$WORK/shipped-wip"  # only this run's model comes back
ARGS=(train recipe --preset mini --scale "$SCALE" --pack "$PACK" --device "$DEVICE" --out "$WORK"
      --ship "$WORK/shipped")
[ "$RESUME" != none ] && ARGS+=(--resume-from "$RESUME")
[ -n "$BUDGET_MIN" ] && ARGS+=(--budget-min "$BUDGET_MIN")
mkdir -p "$(dirname "$WORK")"
note "run: python -m darc_bridge.cli.main ${ARGS[*]}"
t0=$(date +%s)
timeout --kill-after=15 "$RECIPE_LIMIT" "$PY" -m darc_bridge.cli.main "${ARGS[@]}" > "$LOG" 2>&1
rc=$?
note "recipe status $rc after $(( $(date +%s) - t0 )) s (124/137: stopped at RECIPE_LIMIT)"
tail -n 3 "$LOG" | tee -a "$SUMMARY"

# -- what comes back --------------------------------------------------------------------------------------
if [ -f "$WORK/shipped/darc.json" ]; then
  FROM=$WORK/shipped
  note "gate passed: the shipped model comes back (commit it to models/darc-mini)"
  status=0
elif [ -f "$WORK/shipped-wip/darc.json" ]; then
  FROM=$WORK/shipped-wip  # the ship stage kept the gated checkpoint (train/recipe.py)
  note "gate failed: the gated checkpoint comes back (commit it to models/darc-mini-wip; RESUME= it continues)"
  status=7
else
  # the recipe stopped before its ship stage: the latest checkpoint, written the way ship() writes a
  # model (fp16, gate files, recipe.json), so that it fits 16 MiB a file and a later run resumes from it
  FROM=$WORK/unshipped
  "$PY" - "$WORK" "$FROM" "$SCALE" "${ARGS[*]}" >> "$SUMMARY" 2>&1 <<'PY'
import json, sys
from dataclasses import asdict
from pathlib import Path

from darc_bridge.train.loop import latest_step_dir
from darc_bridge.train.recipe import SCALES, _history, keep_unshipped

work, out, scale, args = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
recipe = {"command": "darc-bridge " + args, "preset": "mini", "scale": asdict(SCALES[scale]), "data_seed": 0,
          "pack": "build/pack.npz"}
kept = keep_unshipped(work, out, recipe)
if kept is None:
    print("no DARC or base checkpoint was saved: nothing to bring back")
    sys.exit(1)
got = json.loads((kept / "recipe.json").read_text())
print(f"not shipped: the {got['stage']} checkpoint at step {got['trained_steps']} ({got['checkpoint']}) comes back")
print("loss history:", json.dumps({"base": _history(latest_step_dir(work / "base")),
                                   "darc": _history(latest_step_dir(work / "darc"))}))
PY
  [ $? -eq 0 ] || note "FAIL: no checkpoint to bring back"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status=124; elif [ $rc -ne 0 ]; then status=$rc; else status=7; fi
fi
copied=0
for f in $MODEL_FILES; do
  if [ -f "$FROM/$f" ]; then cp "$FROM/$f" "$OUT/$f" && copied=$((copied + 1)); fi
done
[ -f "$WORK/gate/gate.json" ] && [ ! -f "$OUT/gate.json" ] && cp "$WORK/gate/gate.json" "$WORK/gate/gate.md" "$OUT/" 2>/dev/null
if [ -f "$WORK/recipe.json" ]; then
  echo "work summary ($WORK/recipe.json: gate, stage seconds, loss histories):" >> "$SUMMARY"
  cat "$WORK/recipe.json" >> "$SUMMARY"
fi
tail -n 2000 "$LOG" | tail -c 4000000 > "$OUT/recipe.log"  # progress bars make long lines
note "copied $copied model files from $FROM; end=$(date -u +%FT%TZ) status=$status"
ls -la "$OUT" | tee -a "$SUMMARY"
exit $status
