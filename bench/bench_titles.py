"""Task-3 benchmark: next-title BLEU per locale and generation speed, against Last Product Title.

On synthetic ``--scale`` data (generated into ``--work`` unless ``--data`` names a folder) it fits the
heuristics on the training sessions, trains the mT5 title generator once per ``--k`` value (or loads
``--model`` folders), and prints

- BLEU per locale and overall on the task-3 test file (``data.test(3)`` against ``data.truth(3)``),
  one row per method: last-title (the named baseline), trimmed-title, mt5 K=...;
- generation speed in titles per second on this machine, with the ratio to LastTitle's speed;
- training time of each mT5 model, and a few generations next to the ground truth.

The ground truth is only used for scoring: models are selected on sessions held out from training.

    python bench/bench_titles.py --work /tmp/m2-titles                 # K=3, default config
    python bench/bench_titles.py --work /tmp/m2-titles --k 1 2 3       # the paper's K ablation
    python bench/bench_titles.py --data data/small --model runs/titles  # a trained folder
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import pandas as pd

logger = logging.getLogger("bench_titles")

BASELINE = "last-title"


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data folder with gt_task3.csv (default: synthetic)")
    parser.add_argument("--work", default="/tmp/m2-bench-titles")
    parser.add_argument("--scale", default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, nargs="+", default=[3], help="K values to train and compare")
    parser.add_argument("--model", nargs="*", default=None, help="trained model folders instead of training")
    parser.add_argument("--config", default=None, help="TitleConfig JSON for training")
    parser.add_argument("--beams", type=int, default=4, help="also time beam search with this many beams (0: skip)")
    parser.add_argument("--examples", type=int, default=8)
    args = parser.parse_args()

    from recformer_m2.constants import LOCALES
    from recformer_m2.data import M2Data
    from recformer_m2.heuristics import LastTitle
    from recformer_m2.metrics import title_bleu
    from recformer_m2.titles import TitleGenerator, TrimmedTitle, train_titles

    work = Path(args.work)
    if args.data:
        folder = Path(args.data)
    else:
        from recformer_m2.synth import generate

        folder = work / f"data-{args.scale}-{args.seed}"
        if not (folder / "gt_task3.csv").exists():
            generate(folder, args.scale, args.seed)
    data = M2Data(folder)
    catalog, train, test = data.catalog, data.train, data.test(3)
    refs = data.truth(3)["next_item_title"].fillna("").tolist()
    locales = [LOCALES[x] for x in test.locale]

    titles: dict[str, list[str]] = {}
    speed: dict[str, float] = {}
    notes: dict[str, str] = {}
    for name, method in ((BASELINE, LastTitle()), ("trimmed-title", TrimmedTitle())):
        method, fit_seconds = timed(method.fit, catalog, train)
        titles[name], seconds = timed(method.generate, test)
        speed[name] = len(test) / max(seconds, 1e-9)
        notes[name] = f"fit {fit_seconds:.1f} s" + (f", min_rate {method.min_rate}" if name != BASELINE else "")

    folders = [Path(m) for m in args.model] if args.model else []
    if not folders:
        for k in args.k:
            out = work / f"titles-k{k}"
            if not (out / "metrics.json").exists():
                train_titles(folder, out, args.config, {"k": k})
            folders.append(out)
    for out in folders:
        generator = TitleGenerator.from_pretrained(out).fit(catalog)
        name = f"mt5 K={generator.config.k}"
        titles[name], seconds = timed(generator.generate, test)
        speed[name] = len(test) / seconds
        record = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else {}
        notes[name] = (f"trained {record.get('train_seconds', float('nan')):.0f} s, {record.get('global_step')} steps, "
                       f"val_bleu {record.get('val_bleu', float('nan')):.4f}")
        if args.beams > 1:
            beam = TitleGenerator.from_pretrained(out, num_beams=args.beams).fit(catalog)
            beam_name = f"{name} beams={args.beams}"
            titles[beam_name], seconds = timed(beam.generate, test)
            speed[beam_name] = len(test) / seconds

    table = pd.DataFrame({name: title_bleu(hyps, refs, locales)["BLEU"] for name, hyps in titles.items()}).T
    table = table[[c for c in (*LOCALES, "overall") if c in table.columns]]
    base = table.loc[BASELINE]
    wins = {name: int((row[list(LOCALES)] > base[list(LOCALES)]).sum()) for name, row in table.iterrows()}
    print("\nTask 3 BLEU (0-1) on the test file; `wins` = locales above last-title")
    print(table.assign(wins=pd.Series(wins)).to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"\nGeneration speed ({len(test)} sessions, this machine); ratio against {BASELINE}:")
    for name in titles:
        print(f"  {name:24s} {speed[name]:12.1f} titles/s  {speed[name] / speed[BASELINE]:10.5f} x {BASELINE}"
              f"   {notes.get(name, '')}")
    shown = [n for n in titles if n.startswith("mt5") and "beams" not in n][-1:] or [BASELINE]
    print(f"\nExamples ({shown[0]} | {BASELINE} | truth):")
    step = max(1, len(test) // max(args.examples, 1))
    for i in range(0, len(test), step)[:args.examples]:
        print(f"  [{locales[i]}] {titles[shown[0]][i]}\n       last: {titles[BASELINE][i]}\n      truth: {refs[i]}")
    work.mkdir(parents=True, exist_ok=True)
    table.to_csv(work / "bleu.csv")
    (work / "speed.json").write_text(json.dumps({"titles_per_second": speed, "notes": notes}, indent=2))


if __name__ == "__main__":
    main()
