# Sourced by scripts/gpu_decode_check.sh and scripts/gpu_train_model.sh (not run on its own).
# Puts the carried .gpu_site/ (made by scripts/gpu_site.sh on the CPU machine) on PYTHONPATH: the
# packages the GPU machine's image lacks, its binary wheels installed into SITE_DIR, and a stub
# only where the real module is missing. Needs $PY and the repository root as the working folder.
# Usage: gpu_site_path SITE_DIR   (returns non-zero when the wheels do not install)
gpu_site_path() {
  local site_dir=$1 stub
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
  [ -d .gpu_site ] || return 0
  rm -rf "$site_dir" && mkdir -p "$site_dir/stubs"
  if ls .gpu_site/whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site_dir/whl" \
      .gpu_site/whl/*.whl || return 1
  fi
  for stub in xformers spacy av; do
    if ! PYTHONPATH="$site_dir/whl:$PWD/.gpu_site/py" "$PY" -c "import $stub" >/dev/null 2>&1; then
      cp -r .gpu_site/stubs/$stub* "$site_dir/stubs/"
    fi
  done
  export PYTHONPATH=$PYTHONPATH:$site_dir/whl:$PWD/.gpu_site/py:$site_dir/stubs
}
