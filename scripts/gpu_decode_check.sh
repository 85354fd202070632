#!/usr/bin/env bash
# The decode path's GPU check (issue 11), one prepared run of at most 8 minutes on one GPU:
#   1. the decode parity tests and the host-sync test on cuda (DARC_TEST_DEVICE=cuda: a test that
#      needs cuda errors instead of skipping; the sync test also runs under
#      torch.cuda.set_sync_debug_mode("error")), junit XML and log into $OUT;
#   2. the model benchmark table (device picked by itself: cuda), rows written to
#      $OUT/bench_model.txt as each one finishes.
# Usage (from the repository root):
#   OUT=/some/dir scripts/gpu_decode_check.sh          # on the GPU machine: expects cuda, fails without
#   OUT=/some/dir scripts/gpu_decode_check.sh --cpu    # dry run on a CPU machine: same steps, CPU, toy bench
# PYTHON overrides the interpreter (default .venv/bin/python, else python3). A .gpu_site/ folder
# (scripts/gpu_site.sh) supplies the packages the GPU image lacks. Exit status: 0 when everything
# passed, 3 when cuda was expected and is missing, 6 when the code does not import, else the
# first failing step's status.
set -u -o pipefail

MODE=cuda
if [ "${1:-}" = "--cpu" ]; then MODE=cpu; fi
OUT=${OUT:-$(mktemp -d /tmp/gpu_decode_check.XXXXXX)}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || exit 2
cd "$(dirname "$0")/.." || exit 2
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
# .gpu_site/ (scripts/gpu_site.sh, carried): what the GPU image lacks (scripts/gpu_site_path.sh)
. scripts/gpu_site_path.sh
gpu_site_path "${TMPDIR:-/tmp}/darc_gpu_site" || { echo "FAIL: installing .gpu_site/whl"; exit 2; }
export HF_HUB_OFFLINE=1
TEST_LIMIT=${TEST_LIMIT:-200}    # seconds for the tests
BENCH_LIMIT=${BENCH_LIMIT:-250}  # seconds for the bench (tests + bench + start-up stay under 8 minutes)
SUMMARY=$OUT/summary.txt
status=0
note() { echo "$*" | tee -a "$SUMMARY"; }
: > "$SUMMARY"
note "gpu_decode_check mode=$MODE start=$(date -u +%FT%TZ) python=$PY"

# -- the machine -------------------------------------------------------------------------------
{
  nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  "$PY" -c "import torch, platform; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '', \
'bf16', torch.cuda.is_available() and torch.cuda.is_bf16_supported(), platform.python_version())"
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt" >> "$SUMMARY"
if [ "$MODE" = cuda ]; then
  if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    note "FAIL: cuda expected but torch sees no GPU (see $OUT/machine.txt); nothing was run"
    exit 3
  fi
  export DARC_TEST_DEVICE=cuda
  BENCH_ARGS=(--expect-cuda)
else
  export DARC_TEST_DEVICE=cpu
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  BENCH_ARGS=(--quick)
fi

if ! "$PY" -c "import darc_bridge.compat as c; c.import_audiocraft(); import darc_bridge.model.decode, \
darc_bridge.engines.darc, librosa, soundfile, pytest, xdist" > "$OUT/imports.log" 2>&1; then
  tail -n 5 "$OUT/imports.log"
  note "FAIL: the code does not import here (see $OUT/imports.log; scripts/gpu_site.sh prepares what the GPU image lacks)"
  exit 6
fi

# -- 1. parity and host syncs on the device ---------------------------------------------------------
timeout "$TEST_LIMIT" "$PY" -m pytest -q -p no:cacheprovider -n 0 -rs \
  --junitxml "$OUT/decode_tests.xml" tests/test_model_decode.py tests/test_model_decode_syncs.py \
  > "$OUT/decode_tests.log" 2>&1
rc=$?
tail -n 15 "$OUT/decode_tests.log"
if [ $rc -ne 0 ]; then note "FAIL: decode tests (status $rc, 124 = time limit): $OUT/decode_tests.log"; status=$rc
else note "ok: decode tests on $DARC_TEST_DEVICE"; fi
if [ "$MODE" = cuda ] && grep -q "SKIPPED" "$OUT/decode_tests.log"; then
  note "FAIL: a decode test skipped itself on the GPU machine (see the SKIPPED lines)"; [ $status -eq 0 ] && status=4
fi

# -- 2. the model benchmark table --------------------------------------------------------------------
timeout "$BENCH_LIMIT" "$PY" -m darc_bridge.bench.model --out "$OUT/bench_model.txt" "${BENCH_ARGS[@]}" \
  > "$OUT/bench_model.log" 2>&1
rc=$?
cat "$OUT/bench_model.txt" 2>/dev/null
if [ $rc -ne 0 ]; then note "FAIL: model bench (status $rc, 124 = time limit; rows so far in $OUT/bench_model.txt)"
  [ $status -eq 0 ] && status=$rc
else note "ok: model bench, table in $OUT/bench_model.txt"; fi
if [ "$MODE" = cuda ] && grep -q "(cpu)" "$OUT/bench_model.txt" 2>/dev/null; then
  note "FAIL: bench rows ran on the CPU"; [ $status -eq 0 ] && status=5
fi
note "end=$(date -u +%FT%TZ) status=$status"
exit $status
