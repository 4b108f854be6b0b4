#!/usr/bin/env bash
# The full-scale CPU chain, one method at a time: `synth --scale full`, then `recformer-m2 predict` and
# `evaluate` for each task and method, each under /usr/bin/time (wall seconds, peak RSS). Prints one
# Markdown table of test-file figures (the fits use training sessions only). Tasks and methods are
# arguments so a run can be split across sessions.
#
#   bash bench/full_scale.sh [--work DIR] [--scale full] [--tasks "1 2 3"] [--methods "popularity covisitation textknn hybrid"]
set -euo pipefail
cd "$(dirname "$0")/.."
work=runs/full-scale scale=full tasks="1 2 3" methods="popularity covisitation textknn hybrid"
title_methods="last-title trimmed-title grid-title"
while [[ $# -gt 0 ]]; do
  case $1 in
    --work) work=$2; shift 2 ;;
    --tasks) tasks=$2; shift 2 ;;
    --methods) methods=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    --title-methods) title_methods=$2; shift 2 ;;
    *) echo "full_scale.sh: unknown argument $1" >&2; exit 1 ;;
  esac
done
mkdir -p "$work/out" "$work/logs"
data=$work/data
if [[ ! -f $data/gt_task3.csv ]]; then
  /usr/bin/time -f "%e %M" -o "$work/logs/synth.time" recformer-m2 synth --out "$data" --scale "$scale" --seed 0
fi
row() {  # task method: predict, evaluate, one table row
  local task=$1 method=$2 out=$work/out/task$1-$2.csv log=$work/logs/task$1-$2
  /usr/bin/time -f "%e %M" -o "$log.time" recformer-m2 predict --data "$data" --task "$task" --method "$method" \
    --out "$out" 2> "$log.log"
  local metric
  metric=$(recformer-m2 evaluate --predictions "$out" --truth "$data/gt_task$task.csv" |
    awk 'NR == 1 {for (i = 1; i <= NF; i++) name[i] = $i} $1 == "overall" {
         for (i = 2; i < NF; i++) printf "%s %s  ", name[i - 1], $i; printf "(n %s)", $NF}')
  read -r seconds kib < "$log.time"
  printf '| %s | %s | %.0f | %.1f | %s |\n' "$task" "$method" "$seconds" "$(echo "$kib / 1048576" | bc -l)" "$metric"
}
echo "| task | method | seconds | peak RSS (GB) | test, overall |"
echo "| --- | --- | --- | --- | --- |"
for task in $tasks; do
  if [[ $task == 3 ]]; then for m in $title_methods; do row 3 "$m"; done
  else for m in $methods; do row "$task" "$m"; done; fi
done
