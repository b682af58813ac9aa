#!/usr/bin/env bash
# Gradient/distribution-matching result cells on one CUDA GPU, same protocol as the CPU runs (the `-cpu` presets):
# one process per (cell, seed), lambda in {0, 1, 10} (the sweep on seed 0 picks the reported lambda on validation);
# CUDA MPS when available. The runner resumes from results.jsonl.
#
#   EASYDD_DATA=<folder with MNIST/raw and FashionMNIST/raw> bash benchmarks/device/gpu_matching.sh SECONDS OUTDIR \
#       "fashion_mnist:1:dsa fashion_mnist:1:dm:200" "mnist:10:dsa ..."     # each argument: a wave, run in turn
set -u
LIMIT=$1; OUT=$2; shift 2
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 EASYDD_THREADS=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000
PY=${PY:-python3}
T0=$(date +%s)
left() { local l=$(( LIMIT - ($(date +%s) - T0) )); [ $l -lt 1 ] && l=1; echo $l; }
LOGS=/tmp/easydd-gpu-logs; mkdir -p $LOGS
pack() {
  tar czf "$OUT/results.tgz" benchmarks/results/matching/results.jsonl \
      $(ls -d runs/matching/*/curves.csv 2>/dev/null) 2>/dev/null
  tar czf "$OUT/logs.tgz" -C $LOGS .
}
nvidia-smi --query-gpu=name --format=csv,noheader
command -v nvidia-cuda-mps-control >/dev/null && nvidia-cuda-mps-control -d 2>/dev/null && echo "MPS on"
$PY -c "
from easydd.data import load_dataset
from easydd.difficulty import reference_panel
for n in ('mnist', 'fashion_mnist'):
    ds = load_dataset(n); reference_panel(ds, model='ConvNet', num_models=4, epochs=1, device='cuda'); print(n, 'ready')
" || exit 1
( while sleep 40; do pack; done ) &
PACKER=$!
timeout $(left) $PY benchmarks/matching_results.py --datasets mnist fashion_mnist --ipcs 10 --random --seeds 0 1 2 \
    > "$LOGS/random10.log" 2>&1 &
R=$!
for wave in "$@"; do
  P=""
  for cell in $wave; do
    IFS=: read -r d ipc m it <<< "$cell"
    for s in 0 1 2; do
      timeout $(left) $PY benchmarks/matching_results.py --datasets $d --ipcs $ipc --methods $m --lambdas 1 10 \
          --seeds $s ${it:+--iterations $it} > "$LOGS/$d-$ipc-$m-$s.log" 2>&1 &
      P="$P $!"
    done
  done
  wait $P
  echo "wave done at +$(( $(date +%s) - T0 )) s: $wave"
done
wait $R
kill $PACKER 2>/dev/null
pack
echo "all done at +$(( $(date +%s) - T0 )) s"
