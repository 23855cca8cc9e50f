#!/usr/bin/env bash
# The GPU checks in one go (run on a machine with a GPU; about 5 minutes). It prints what JAX
# and torch see, then the figures of: the demo, one MNIST conv VAE epoch on each backend, the
# M2 example, and the scaling bench over the GPUs there. Needs the CUDA builds of jax and
# torch in the environment (README, "More devices") and MNIST in ../shared/data/mnist.
#
#   bash bench/gpu_check.sh                  # PY=.venv/bin/python by default
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gpu_check}
DATA=${DATA:-../shared/data}
mkdir -p "$OUT"
status=0
step() {  # step NAME COMMAND...: run it with a time limit, print its tail, keep going
  local name=$1; shift
  echo; echo "=== $name"; local t0=$SECONDS
  if ! timeout 240 "$@" > "$OUT/$name.log" 2>&1; then echo "FAILED (see $OUT/$name.log)"; status=1; fi
  tail -n 15 "$OUT/$name.log"; echo "($((SECONDS - t0)) s)"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "nvidia-smi: none"
$PY - <<'PY'
import jax, torch
print("jax", jax.__version__, jax.devices())
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.device_count() if torch.cuda.is_available() else 0)
PY
NGPU=$($PY -c "import jax; print(sum(d.platform == 'gpu' for d in jax.devices()))" 2>/dev/null || echo 0)
step demo "$PY" -m probvae train --device gpu --out "$OUT/demo" --overwrite --no-progress
step mnist_conv_numpyro "$PY" -m probvae train --dataset mnist --data-dir "$DATA/mnist" \
  --encoder conv --decoder conv --likelihood bernoulli --binarize dynamic --epochs 1 \
  --eval-samples 10 --no-progress --device gpu --out "$OUT/conv_numpyro" --overwrite
step mnist_conv_pyro "$PY" -m probvae train --dataset mnist --data-dir "$DATA/mnist" --backend pyro \
  --encoder conv --decoder conv --likelihood bernoulli --binarize dynamic --epochs 1 \
  --eval-samples 10 --no-progress --device gpu --out "$OUT/conv_pyro" --overwrite
step semi_supervised "$PY" examples/semi_supervised.py --out "$OUT/m2"
if [ "$NGPU" -ge 1 ]; then
  DEVS=""; n=1; while [ "$n" -le "$NGPU" ]; do DEVS="$DEVS $n"; n=$((n * 2)); done
  step scaling "$PY" bench/scaling.py devices stream --platform gpu --devices $DEVS
else
  step scaling "$PY" bench/scaling.py devices stream --rows 20000
fi
exit $status
