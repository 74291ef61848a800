#!/bin/sh
# The whole KD ablation of docs/kd_evidence.md, one run at a time, niced, one thread each
# (~60 min on 2 shared cores for A-C, D about 2 h more, E 5.7 CPU-hours measured). Finished runs are
# cached under bench/results/, so rerunning resumes; E's seeds can run as parallel processes
# (e.g. --seeds 0,1,2,3 and --seeds 4,5,6,7, one core each) before its summary.
set -e
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-.venv/bin/python}"
B="nice -n 10 $PY bench/kd_ablation.py"
# A: 240 steps, the main arms
$B --arms "student-only,KD,KD no teacher dropout,two-stage"
# B: the variants at 240 steps, one arm over all seeds at a time
for arm in "KD λ=0.001" "KD λ=0.1" "KD BT 3 scales" "KD mutual" "KD warm-up" "KD + logit"; do
  $B --arms "student-only,$arm"
done
# C: 480 steps, student-only against KD and the best-looking 240-step variants
$B --name kd_ablation_long --epochs 24 --val-every 4 --arms "student-only,KD,KD λ=0.001,KD warm-up,two-stage"
# D (issue 20): 480 steps, 8 seeds, the verdict from 95 % paired intervals: student-only, KD as
# shipped (teacher dropout off), two-stage as documented (dropout in stage 1 only), then KD with
# teacher dropout 0.5; reuses C's runs
S8=0,1,2,3,4,5,6,7
D_ARMS="student-only,KD no teacher dropout,two-stage shipped,KD"
$B --name kd_ablation_8seeds --runs kd_ablation_long --epochs 24 --val-every 4 --seeds $S8 --arms "$D_ARMS"
# E (issue 20): the same three shipped arms at the parity budget of docs/nnunet_parity.md §4
# (2880 steps = 144 × 20, where glioedge's trainer is level with nnU-Net v2's), 8 seeds
E_ARMS="student-only,KD no teacher dropout,two-stage shipped"
E="--name kd_ablation_2880 --epochs 144 --val-every 24 --seeds $S8 --arms"
$B $E "$E_ARMS"
# summaries (JSON, PNG, markdown) of everything finished
$B --finished-only
$B --name kd_ablation_long --epochs 24 --val-every 4 --finished-only \
  --arms "student-only,KD,KD λ=0.001,KD warm-up,two-stage"
$B --name kd_ablation_8seeds --runs kd_ablation_long --epochs 24 --val-every 4 --seeds $S8 \
  --finished-only --arms "$D_ARMS"
$B $E "$E_ARMS" --finished-only
