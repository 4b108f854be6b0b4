"""Calibration of a synthetic data folder against real Amazon-M2 sessions (issue 16's table).

    python bench/bench_calibration.py --data DIR [--sessions ../shared/real_m2/task2_sessions.parquet]

Both sides are ES/FR/IT training sessions sampled at equal counts per locale (2,000 each, or fewer
when a side has fewer; seeded), so the statistics that depend on the sample size compare like with
like. Prints real vs synthetic, the ratio and a pass/fail column for the +-20% band, then the task-3
Last Product Title BLEU of the folder against the 0.22-0.34 band (the real value is the paper's 0.268).
The real sessions are read from their path, never copied.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from recformer_m2.synth.stats import (CALIBRATION_TARGETS, STAT_LABELS, last_title_bleu, read_sessions,
                                      sample_per_locale, session_stats)

LOCALES = ("ES", "FR", "IT")
BLEU_BAND = (0.22, 0.34)
TOLERANCE = 0.20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a synthetic data folder (sessions_train.csv, gt_task3.csv)")
    ap.add_argument("--sessions", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "real_m2"
                                              / "task2_sessions.parquet"), help="real sessions (parquet)")
    ap.add_argument("--per-locale", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    for p in (Path(args.data) / "sessions_train.csv", Path(args.sessions)):
        if not p.exists():
            print(f"error: {p} not found", file=sys.stderr)
            return 1
    real = read_sessions(args.sessions, LOCALES)
    synth = read_sessions(args.data, LOCALES)
    n = {loc: min(args.per_locale, int((real["locale"] == loc).sum()), int((synth["locale"] == loc).sum()))
         for loc in LOCALES}
    rs = real.iloc[sample_per_locale(real["locale"], n, args.seed)]
    ss = synth.iloc[sample_per_locale(synth["locale"], n, args.seed)]
    real_stats = session_stats(rs["prev_items"].tolist(), rs["next_item"].tolist()).as_dict()
    synth_stats = session_stats(ss["prev_items"].tolist(), ss["next_item"].tolist()).as_dict()
    print(f"ES/FR/IT training sessions per locale: {n} (seed {args.seed}); real = {args.sessions}, "
          f"synthetic = {args.data}")
    print(f"| statistic | real (issue 16) | real (this sample) | synthetic | synthetic / real | within +-20% |")
    print("| --- | --- | --- | --- | --- | --- |")
    ok_all = True
    for key, label in STAT_LABELS.items():
        if key == "last_title_bleu":
            continue
        target = CALIBRATION_TARGETS[key]
        ratio = synth_stats[key] / target
        ok = abs(ratio - 1) <= TOLERANCE
        ok_all &= ok
        print(f"| {label} | {target:.3f} | {real_stats[key]:.3f} | {synth_stats[key]:.3f} | {ratio:.2f} | "
              f"{'pass' if ok else 'FAIL'} |")
    gt3 = Path(args.data) / "gt_task3.csv"
    if gt3.exists():
        bleu = last_title_bleu(args.data)
        ok = BLEU_BAND[0] <= bleu <= BLEU_BAND[1]
        ok_all &= ok
        print(f"| {STAT_LABELS['last_title_bleu']} | {CALIBRATION_TARGETS['last_title_bleu']:.3f} (paper) | - | "
              f"{bleu:.3f} | {bleu / CALIBRATION_TARGETS['last_title_bleu']:.2f} | "
              f"{'pass' if ok else 'FAIL'} (band {BLEU_BAND[0]}-{BLEU_BAND[1]}) |")
    print(f"overall: {'pass' if ok_all else 'FAIL'} ({time.perf_counter() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
