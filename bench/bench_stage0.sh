#!/usr/bin/env bash
# "Stage 0" transfer (issue 21): finetune the pretrained model with the finetuning objective (full item-table
# softmax, popularity prior) on a share of the large locales' (UK/DE/JP) sessions, then finetune that on
# ES/FR/IT as usual, and compare it on the task-2 test file with the two main-job finetunings.
#   bash bench/bench_stage0.sh MAIN_RUN [FRACTION] [EPOCHS] [DATA]
# MAIN_RUN is a main-job folder (runs/main: data/, pretrain/final, finetune-supervised/best,
# finetune-pretrained/best); DATA (default MAIN_RUN/data) is its data folder when it lies elsewhere (a
# `pipeline --data DIR` run). FRACTION (default 0.1) of the UK/DE/JP training sessions, EPOCHS (default 1)
# epochs of stage 0. Outputs go to MAIN_RUN/stage0 and MAIN_RUN/stage0-ft; rerunning resumes.
# Choose between the rows by their validation columns; the test columns are for the report.
set -euo pipefail
RUN="$1"; FRACTION="${2:-0.1}"; EPOCHS="${3:-1}"; DATA="${4:-$1/data}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
CONFIG="$HERE/finetune/configs/small.json"
python "$HERE/finetune/finetune.py" --data "$DATA" --pretrained "$RUN/pretrain/final" --out "$RUN/stage0" \
  --config "$CONFIG" --task 1 --train-fraction "$FRACTION" --stage1-epochs "$EPOCHS" --stage2-epochs 0 \
  --lexical-grid '' --cross-locale false  # cross-locale sessions of task 1 are the ES/FR/IT ones validated on later
bash "$HERE/finetune/finetune.sh" "$DATA" "$RUN/stage0/best" "$RUN/stage0-ft" --config "$CONFIG"
python "$HERE/bench/bench_transfer.py" --data "$DATA" --versus supervised \
  --model "supervised=recformer-alone:$RUN/finetune-supervised/best" \
  --model "pretrained+ft=recformer-alone:$RUN/finetune-pretrained/best" \
  --model "stage0+ft=recformer-alone:$RUN/stage0-ft/best" \
  --model "supervised fused=recformer:$RUN/finetune-supervised/best" \
  --model "pretrained+ft fused=recformer:$RUN/finetune-pretrained/best" \
  --model "stage0+ft fused=recformer:$RUN/stage0-ft/best"
