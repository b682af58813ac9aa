#!/usr/bin/env bash
# Fashion-MNIST IPC 1 results for the matching issue (DC, DSA, DSAC, DM) and the trajectory issue (MTT, FTD, TESLA,
# DATM) on one CUDA GPU, with exactly the protocol of the MNIST CPU runs (the same `-cpu` presets and budgets):
# the GPU only buys time, it does not change the recipe. Every run is its own process (seeded from its config);
# the runners resume from what is already written, so a killed call loses only the runs in flight.
#
#   EASYDD_DATA=<folder with FashionMNIST/raw/*.gz> bash benchmarks/device/gpu_results.sh [SECONDS] [OUTDIR]
#
# SECONDS bounds the whole job (default 480); OUTDIR receives results.tgz and the logs.
set -u
LIMIT=${1:-480}
OUT=${2:-${OUT:-/tmp/easydd-gpu}}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 EASYDD_THREADS=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000
PY=${PY:-python3}
T0=$(date +%s)
left() { local l=$(( LIMIT - ($(date +%s) - T0) )); [ $l -lt 1 ] && l=1; echo $l; }
LOGS=/tmp/easydd-gpu-logs; mkdir -p $LOGS
pack() {
  tar czf "$OUT/results.tgz" benchmarks/results/matching/results.jsonl benchmarks/trajectory/results_runs \
      $(ls -d runs/matching/*/curves.csv runs/tm_results/*/curves.csv 2>/dev/null) 2>/dev/null
  tar czf "$OUT/logs.tgz" -C $LOGS .
  echo "packed $(tar tzf "$OUT/results.tgz" | wc -l) files at +$(( $(date +%s) - T0 )) s"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# 1. smoke: one DSA and one DM run of 2 iterations on the GPU (also decodes the dataset and builds the reference
#    panel once, before the workers would race for them). CUDA MPS lets the many small processes share the GPU
#    at once instead of time-slicing; without it (or if it breaks CUDA here) the job runs as plain processes.
cat > /tmp/smoke.py <<'PY'
import os
import time
t = time.time()
from easydd.config import build_config
from easydd.data import load_dataset
from easydd.distill import distill
from easydd.methods import method_params
ds = load_dataset("fashion_mnist")
for m in ("dsa", "dm"):
    cfg = build_config(f"{m}-fashion_mnist-ipc1-cpu", dict(iterations=2, eval_num_models=1, eval_epochs=2,
                       track_every=1, out_dir="/tmp/smoke", device=os.environ.get("SMOKE_DEVICE", "cuda")), method_params)
    r = distill(cfg, ds, progress=False, resume=False)
    print(m, "smoke ok", r.metrics["device"], round(r.metrics["last"]["models"]["ConvNet"]["mean"], 3))
print("smoke seconds", round(time.time() - t, 1))
PY
MPS=0
if command -v nvidia-cuda-mps-control >/dev/null && nvidia-cuda-mps-control -d 2>/dev/null; then MPS=1; fi
if ! timeout 120 $PY /tmp/smoke.py; then
  [ $MPS = 1 ] && { echo quit | nvidia-cuda-mps-control; MPS=0; sleep 2; }
  timeout 120 $PY /tmp/smoke.py || { echo "SMOKE FAILED"; exit 1; }
fi
echo "MPS=$MPS; smoke done at +$(( $(date +%s) - T0 )) s"
( while sleep 45; do pack > /dev/null; done ) &
PACKER=$!

# 2. expert buffers for MTT/TESLA/DATM (plain) and FTD (flat, GSAM), in parallel
( timeout $(left) $PY -m easydd.cli experts --preset mtt-fashion_mnist-ipc1-cpu > "$LOGS/experts-mtt.log" 2>&1 ) &
E1=$!
( timeout $(left) $PY -m easydd.cli experts --preset ftd-fashion_mnist-ipc1-cpu > "$LOGS/experts-ftd.log" 2>&1 ) &
E2=$!

# 3. gradient/distribution matching: one process per (method, seed), each lambda in {0, 1, 10}
for m in ${MATCH_METHODS:-dc dsac}; do
  it=""; [ $m = dm ] && it="--iterations 200"
  for s in 0 1 2; do
    timeout $(left) $PY benchmarks/matching_results.py --datasets fashion_mnist --ipcs 1 --methods $m \
        --lambdas 1 10 --seeds $s $it > "$LOGS/match-$m-$s.log" 2>&1 &
    MP="${MP:-} $!"
  done
done
timeout $(left) $PY benchmarks/matching_results.py --datasets fashion_mnist --ipcs 1 --random --seeds 0 1 2 \
    > "$LOGS/match-random.log" 2>&1 &
MP="${MP:-} $!"

# 4. trajectory matching once the buffers exist: the seed-0 sweep, then the other seeds at lambda 0 and the best
wait $E1 $E2
echo "buffers done at +$(( $(date +%s) - T0 )) s"; tail -n 3 "$LOGS"/experts-*.log
N=12; SW=""
for i in $(seq 0 $((N - 1))); do
  timeout $(left) $PY benchmarks/trajectory/run_results.py sweep --dataset fashion_mnist --worker $i/$N \
      > "$LOGS/tm-sweep-$i.log" 2>&1 &
  SW="$SW $!"
done
timeout $(left) $PY benchmarks/trajectory/run_results.py random --dataset fashion_mnist > "$LOGS/tm-random.log" 2>&1 &
MP="$MP $!"
wait $SW
echo "sweep done at +$(( $(date +%s) - T0 )) s"
pack
N=16
for i in $(seq 0 $((N - 1))); do
  timeout $(left) $PY benchmarks/trajectory/run_results.py seeds --dataset fashion_mnist --worker $i/$N \
      > "$LOGS/tm-seeds-$i.log" 2>&1 &
  MP="$MP $!"
done
wait $MP
kill $PACKER 2>/dev/null
echo "all done at +$(( $(date +%s) - T0 )) s"
pack
