#!/usr/bin/env bash
# The confirmatory study's arms (docs/study.md, "Plan") at the published scale, with `python -m
# nsde.train` and the metrics alone (no Ray, Optuna or MLflow): a GPU machine with torch, timm,
# captum and torchattacks runs it. Each arm is trained once per seed and scored once on the TEST
# split with the evaluation profile:
#   plain      A: ConvNeXt-Base, no noise (the deterministic baseline)
#   gauss      B: Gaussian noise on the spectrogram, intensity per example in [0, s]
#   signal     B': white noise on the waveform at an SNR per example in [lo, 40] dB
#   published  C: the published NSDE as published: fBm, H 0.5, every block, an ABSOLUTE sigma (0.3),
#              noise on at test (mean softmax of 8 passes), scored with EOT APGD and its checks
#   nsde       D: fBm H 0.5 at a relative sigma, noise off at test
#   white      E: white internal noise at D's sigma
# B's s, B''s lo and D's sigma (and recipe) are the pilot's choices, read from
# bench/results/confirm-pilot.json once the pilot is complete; set GAUSS, SIGNAL and NSDE to run
# before that or with other settings. Then bench/study_pairs.py pairs every arm with `plain`.
#
#   bash bench/study_gpu.sh                                   # paper preset, 30 epochs, seeds 0 1 2
#   EPOCHS=3 SEEDS="0" bash bench/study_gpu.sh                # a few minutes' smoke run
#   PRESET=tiny BACKBONE=resnet18 DEPTH=2 EPOCHS=1 SEEDS="0 1" PROFILE=rung DEVICE=cpu \
#     GAUSS=0.1 SIGNAL=5 NSDE=0.3 bash bench/study_gpu.sh     # a CPU check of the script (32x32: 1x1 maps in
#                                                             # the last stage, so the noise stays in the first blocks)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-outputs/study-gpu}
PRESET=${PRESET:-paper}
BACKBONE=${BACKBONE:-convnext_base}
EPOCHS=${EPOCHS:-30}
C_EPOCHS=${C_EPOCHS:-$EPOCHS}   # the CPU study trains C twice as long (it converged later there); unmeasured here
SEEDS=${SEEDS:-"0 1 2"}
PROFILE=${PROFILE:-study}
DEPTH=${DEPTH:-all}
DEVICE=${DEVICE:-}
ARMS=${ARMS:-"plain gauss signal published nsde white"}
choice() {  # the pilot's choice $1 ("B" "augment/high", ...), or exit naming what to set
  $PYTHON - "$1" "$2" <<'PY' || { echo "[study-gpu] the pilot has not chosen $1 yet (bench/results/confirm-pilot.json): set $3" >&2; exit 2; }
import json, sys
rec = json.load(open("bench/results/confirm-pilot.json"))
print(rec[sys.argv[1]][sys.argv[2]])
PY
}
GAUSS=${GAUSS:-$(choice B augment/high GAUSS)}
SIGNAL=${SIGNAL:-$(choice "B'" augment/snr_low SIGNAL)}
NSDE=${NSDE:-$(choice D noise/sigma NSDE)}
# (later options win: these override the recipe's relative sigma and noise-off evaluation)
PUBLISHED=${PUBLISHED:-"--shape fbm --hurst 0.5 --sigma 0.3 --sigma-mode absolute --eval-mode mc --mc-samples 8"}
# one recipe for every arm (the paper space's baseline point); the noise is relative, in every block
# whose noise reaches the logits, and off at evaluation, as in the CPU study (except `published`)
RECIPE="--preset $PRESET --backbone $BACKBONE --batch-size 64 --lr 1e-3 --weight-decay 0.05 \
 --drop-path 0.1 --sigma-mode relative --anchor mean --depth $DEPTH --eval-mode off \
 --evaluate --eval-profile $PROFILE --eval-split test --quiet ${DEVICE:+--device $DEVICE}"
mkdir -p "$OUT/logs"
start=$(date +%s)
for seed in $SEEDS; do
  for arm in $ARMS; do
    epochs=$EPOCHS
    case $arm in
      plain) noise="--sigma 0" ;;
      gauss) noise="--sigma 0 --augment gaussian --augment-low 0 --augment-high $GAUSS" ;;
      signal) noise="--sigma 0 --augment signal --augment-snr $SIGNAL 40" ;;
      published) noise="$PUBLISHED"; epochs=$C_EPOCHS ;;
      nsde) noise="--shape fbm --hurst 0.5 --sigma $NSDE" ;;
      white) noise="--shape white --sigma $NSDE" ;;
      *) echo "[study-gpu] unknown arm $arm (arms: plain gauss signal published nsde white)" >&2; exit 2 ;;
    esac
    if [ -f "$OUT/$arm-$seed/eval_report.json" ]; then
      echo "[study-gpu] $arm seed $seed: done before, kept"
      continue
    fi
    echo "[study-gpu] $arm seed $seed: $noise, $epochs epochs"
    # shellcheck disable=SC2086  # the option strings split into words on purpose
    $PYTHON -m nsde.train $RECIPE --epochs "$epochs" $noise --seed "$seed" --out "$OUT/$arm-$seed" \
      > "$OUT/logs/$arm-$seed.log" 2>&1 \
      || { echo "[study-gpu] $arm seed $seed failed: see $OUT/logs/$arm-$seed.log"; exit 1; }
  done
done
echo "[study-gpu] trained and scored in $(( $(date +%s) - start )) s"
# shellcheck disable=SC2086
$PYTHON bench/study_pairs.py "$OUT" --arms $ARMS --seeds $SEEDS
