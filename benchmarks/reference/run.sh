#!/usr/bin/env bash
# The reference budgets on this CPU (issue 14, item 3): DC and DSA at IPC 1 with the reference recipe
# (1000 iterations, real batch 256, evaluation 5 ConvNets x reference epochs), lambda 0, seeds 0 1 2,
# MNIST and Fashion-MNIST. One thread, lowest priority, so it can run beside other work.
# Resumable: every run checkpoints every 25 iterations into benchmarks/results/reference/runs/<name>/
# (small files, committed), and a finished run (metrics.json present) is skipped.
#   nohup bash benchmarks/reference/run.sh > /tmp/reference.log 2>&1 &
# FAST=1: the same recipe with the real-data passes in bf16 and compiled (precision=bf16 compile=true; docs/speed.md,
# parity with eager fp32 in benchmarks/results/speed_parity.md), runs named <name>-fast, at normal priority:
#   FAST=1 nohup bash benchmarks/reference/run.sh > /tmp/reference-fast.log 2>&1 &
set -u
cd "$(dirname "$0")/../.."
OUT=benchmarks/results/reference/runs
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
FAST=${FAST:-0}
EXTRA=""; SUFFIX=""; NICE="nice -n 19"
if [ "$FAST" = 1 ]; then EXTRA="precision=bf16 compile=true"; SUFFIX="-fast"; NICE=""; fi
# Seed by seed across both datasets, so every cell gets a first number before any gets its third.
for seed in 0 1 2; do
  for ds in mnist fashion_mnist; do
    for m in dsa dc; do
      name="$m-$ds-ipc1-s$seed$SUFFIX"
      [ -f "$OUT/$name/metrics.json" ] && continue
      $NICE .venv/bin/easydd distill --preset "$m-$ds-ipc1" seed=$seed eval_num_models=5 \
        out_dir=$OUT name=$name checkpoint_every=25 $EXTRA || echo "FAILED $name"
    done
  done
done
