#!/usr/bin/env bash
# Prepares .gpu_site/ HERE (the CPU machine, where pip reaches PyPI) with what the GPU machine's
# image lacks for scripts/gpu_decode_check.sh: that image has Python 3.12, torch with CUDA,
# numpy, scipy, pytest (+ xdist, timeout), einops, safetensors, huggingface_hub, ... but not
# audiocraft and its import-time chain, and nothing can be fetched there.
#   .gpu_site/py/     pure-Python packages copied from this checkout's venv (the versions we test with)
#   .gpu_site/whl/    binary wheels for the GPU machine's Python (cffi for soundfile, soxr for librosa)
#   .gpu_site/stubs/  stand-ins for modules audiocraft imports at module level but the decode check
#                     never uses: xformers (only `ops.unbind`, a plain split), spacy (text
#                     conditioners: DARC has none), av (audio file I/O through PyAV: not used).
#                     gpu_decode_check.sh puts a stub on the path only when the real module is missing.
# Then pass carry=[".gpu_site"] to the device run (about 21 MB).
# Usage: scripts/gpu_site.sh [PYTHON_VERSION]   (default 3.12, the GPU image's)
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=${1:-3.12}
VENV_PY=${VENV_PY:-.venv/bin/python}
[ -x "$VENV_PY" ] || VENV_PY=/work/main/.venv/bin/python
SP=$("$VENV_PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
SITE=.gpu_site
rm -rf "$SITE.tmp"
mkdir -p "$SITE.tmp/py" "$SITE.tmp/whl" "$SITE.tmp/stubs/xformers"
# import-time needs of darc_bridge's model, engine and bench code and of audiocraft (found by
# importing them on a path holding only the GPU image's packages); mido and mir_eval for the recipe
# (scripts/gpu_train_model.sh), found the same way
PURE="audiocraft julius omegaconf flashy dora treetable submitit retrying.py colorlog num2words docopt.py
      librosa audioread decorator pooch platformdirs soundfile.py _soundfile.py _soundfile_data pycparser pythonosc
      mido mir_eval"
for p in $PURE; do
  cp -r "$SP/$p" "$SITE.tmp/py/"
done
find "$SITE.tmp/py" -name __pycache__ -type d -prune -exec rm -rf {} +
ver() { "$VENV_PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
"$VENV_PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$SITE.tmp/whl" "cffi==$(ver cffi)" "soxr==$(ver soxr)"
for w in cffi soxr; do
  ls "$SITE.tmp/whl/$w"-*.whl >/dev/null 2>&1 || { echo "no $w wheel for Python $PYVER was downloaded" >&2; exit 1; }
done
cat > "$SITE.tmp/stubs/xformers/__init__.py" <<'PY'
"""Stand-in for xformers on the GPU machine (scripts/gpu_site.sh): audiocraft imports
`xformers.ops` at module level; DARC's attention never calls xformers' kernels."""
PY
cat > "$SITE.tmp/stubs/xformers/ops.py" <<'PY'
"""Stand-in for xformers.ops: audiocraft's attention calls only `unbind` (a plain split into
views), and with memory_efficient=True and the torch backend (DARC's whole-sequence training pass,
model/lm.py `_layer`) it builds a `LowerTriangularMask` only to mean "causal" for torch's SDPA."""

from torch import unbind  # noqa: F401


class LowerTriangularMask:
    """A causal-mask marker: audiocraft passes is_causal=True to SDPA when it gets one."""


def memory_efficient_attention(*args, **kwargs):
    raise NotImplementedError("xformers stand-in (scripts/gpu_site.sh): no memory-efficient attention")
PY
cat > "$SITE.tmp/stubs/spacy.py" <<'PY'
"""Stand-in for spacy on the GPU machine (scripts/gpu_site.sh): audiocraft imports it at module
level for its text conditioners; DARC has no text conditioner."""
PY
cat > "$SITE.tmp/stubs/av.py" <<'PY'
"""Stand-in for PyAV on the GPU machine (scripts/gpu_site.sh): audiocraft imports it at module
level for audio file I/O; the decode check reads and writes no audio files through it."""
PY
rm -rf "$SITE" && mv "$SITE.tmp" "$SITE"
exclude=$(git rev-parse --git-path info/exclude 2>/dev/null || true)
if [ -n "$exclude" ] && ! grep -qx '/.gpu_site/' "$exclude" 2>/dev/null; then
  mkdir -p "$(dirname "$exclude")" && echo '/.gpu_site/' >> "$exclude"
fi
du -sh "$SITE"
