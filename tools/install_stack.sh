#!/usr/bin/env bash
# Creates the project venv with the whole OpenMMLab stack on a current torch.
# mmcv 2.1.0 has no wheel for torch 2.14, so it is compiled once from its PyPI sdist
# (with -std=c++20, which torch >= 2.10 headers need) and cached outside the checkout.
# Env: VENV (default .venv), BAGTRICKS_CACHE (default ~/.cache/bagtricks),
#      MMCV_WHEEL (a prebuilt mmcv 2.1.0 wheel to install instead of building, e.g. a CUDA build),
#      MMCV_FORCE_CUDA=1 to compile the CUDA ops (needs nvcc).
set -euo pipefail
VENV=$(realpath -m "${VENV:-.venv}")
CACHE=${BAGTRICKS_CACHE:-$HOME/.cache/bagtricks}
TORCH=2.14.1
TORCHVISION=0.29.1
FORCE_CUDA=${MMCV_FORCE_CUDA:-0}
flavour=$([ "$FORCE_CUDA" = 1 ] && echo cuda || echo cpu)
WHEEL_DIR="$CACHE/mmcv-2.1.0-torch$TORCH-$flavour"

log() { printf '[install] %s\n' "$*"; }

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; python3 -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# torch first: mmcv's build imports it; setuptools 80.9 still ships pkg_resources, which mmcv's setup.py needs
"${PIP[@]}" install "torch==$TORCH" "torchvision==$TORCHVISION" "setuptools==80.9.0" wheel

if [ -n "${MMCV_WHEEL:-}" ]; then
  [ -f "$MMCV_WHEEL" ] || { echo "MMCV_WHEEL=$MMCV_WHEEL: no such file (expected a built mmcv 2.1.0 wheel)" >&2; exit 1; }
  wheel="$MMCV_WHEEL"
else
  wheel=$(ls "$WHEEL_DIR"/mmcv-2.1.0-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    log "building mmcv 2.1.0 with ops ($flavour) into $WHEEL_DIR (about 6 minutes on 2 cores)"
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    "${PIP[@]}" download "mmcv==2.1.0" --no-deps --no-binary :all: --no-build-isolation -d "$build"
    tar -xzf "$build"/mmcv-2.1.0.tar.gz -C "$build"
    sed -i 's/-std=c++17/-std=c++20/g' "$build/mmcv-2.1.0/setup.py"
    mkdir -p "$WHEEL_DIR"
    (cd "$build/mmcv-2.1.0" && MMCV_WITH_OPS=1 FORCE_CUDA="$FORCE_CUDA" MAX_JOBS=${MAX_JOBS:-2} CFLAGS=-g0 \
      "$VENV/bin/python" -m pip --disable-pip-version-check -q wheel --no-build-isolation --no-deps . -w "$build/dist")
    mv "$build"/dist/mmcv-2.1.0-*.whl "$WHEEL_DIR"/   # move only when complete: no half-written cache
    wheel=$(ls "$WHEEL_DIR"/mmcv-2.1.0-*.whl | head -n 1)
  else
    log "using cached $wheel"
  fi
fi
"${PIP[@]}" install --no-build-isolation "$wheel"
"${PIP[@]}" install --no-build-isolation -e ".[test]"
"$VENV/bin/python" -c "import mmcv.ops, mmdet.models, mmseg.models, backbones; print('[install] stack OK: mmcv', mmcv.__version__)"
