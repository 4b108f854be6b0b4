"""Task-3 benchmark: next-title BLEU per locale and generation speed, against Last Product Title.

On synthetic ``--scale`` data (generated into ``--work`` unless ``--data`` names a folder) it fits the
heuristics on the training sessions, trains the mT5 title generator once through the main job's stage
(:func:`recformer_m2.titles.ablation.title_stage`: one model, K drawn per training pair) or loads a
``--model`` folder, and prints

- BLEU per locale and overall on the task-3 test file (``data.test(3)`` against ``data.truth(3)``),
  one row per method: last-title (the named baseline), trimmed-title, mt5 (K=...) for every ``--k``;
- generation speed in titles per second on this machine, with the ratio to LastTitle's speed;
- the training time, and a few generations next to the ground truth.

The ground truth is only used for scoring: models are selected and tuned on sessions held out from
training (``TitleConfig.valid_by``).

    python bench/bench_titles.py --work /tmp/m2-titles                       # K = 1, 2, 3, default config
    python bench/bench_titles.py --data data/small --model runs/titles --k 3  # a trained folder
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
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 3], help="K values to compare")
    parser.add_argument("--model", default=None, help="a trained model folder instead of training")
    parser.add_argument("--config", default=None, help="TitleConfig JSON for training")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=JSON", help="TitleConfig overrides")
    args = parser.parse_args()

    from recformer_m2.config import load_config
    from recformer_m2.constants import LOCALES
    from recformer_m2.data import M2Data
    from recformer_m2.heuristics import LastTitle
    from recformer_m2.metrics import title_bleu
    from recformer_m2.titles import TitleConfig, TitleGenerator, TrimmedTitle, title_stage
    from recformer_m2.titles.ablation import pick_examples

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

    tables, speed, notes = [], {}, {}
    for name, method in ((BASELINE, LastTitle()), ("trimmed-title", TrimmedTitle())):
        method, fit_seconds = timed(method.fit, catalog, train)
        titles, seconds = timed(method.generate, test)
        speed[name] = len(test) / max(seconds, 1e-9)
        notes[name] = f"fit {fit_seconds:.1f} s" + (f", min_rate {method.min_rate}" if name != BASELINE else "")
        table = title_bleu(titles, refs, locales)
        table.insert(0, "method", name)
        tables.append(table.reset_index())
        if name == BASELINE:
            last = titles

    if args.model:
        generator = TitleGenerator.from_pretrained(args.model).fit(catalog)
        generated = {}
        for k in args.k:
            generated[k], seconds = timed(generator.with_k(k).generate, test)
            speed[f"mt5 (K={k})"] = len(test) / seconds
            table = title_bleu(generated[k], refs, locales)
            table.insert(0, "method", f"mt5 (K={k})")
            tables.append(table.reset_index())
        examples = pick_examples(last, generated[max(args.k)], refs, locales, 2, args.seed)
        record = json.loads((Path(args.model) / "metrics.json").read_text())
        notes["mt5"] = f"trained {record.get('train_seconds')} s"
    else:
        overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
        config = load_config(TitleConfig, args.config, overrides)
        result = title_stage(data, train, test, refs, work / "titles-stage", config, ks=tuple(args.k))
        tables.append(result.table)
        examples = result.examples
        speed[f"mt5 (K={max(args.k)})"] = result.titles_per_second
        record = json.loads((result.model_dir / "metrics.json").read_text())
        notes[f"mt5 (K={max(args.k)})"] = (
            f"trained {result.train_seconds:.0f} s, {record.get('global_step')} steps, "
            f"edit_gate {record.get('edit_gate')}")

    long = pd.concat(tables, ignore_index=True)
    table = long.pivot(index="method", columns="locale", values="BLEU")
    table = table.loc[long["method"].unique(), [c for c in (*LOCALES, "overall") if c in table.columns]]
    base = table.loc[BASELINE]
    wins = {name: int((row[list(LOCALES)] > base[list(LOCALES)]).sum()) for name, row in table.iterrows()}
    print(f"\nTask 3 BLEU (0-1) on the test file ({len(test)} sessions); `wins` = locales above {BASELINE}")
    print(table.assign(wins=pd.Series(wins)).to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"\nGeneration speed ({len(test)} sessions, this machine); ratio against {BASELINE}:")
    for name, value in speed.items():
        print(f"  {name:16s} {value:12.1f} titles/s  {value / speed[BASELINE]:10.5f} x {BASELINE}   "
              f"{notes.get(name, '')}")
    print(f"\nExamples (mt5 K={max(args.k)}):")
    for row in examples.itertuples(index=False):
        print(f"  [{row.locale}] {row.generated}\n       last: {row[1]}\n      truth: {row.truth}")
    work.mkdir(parents=True, exist_ok=True)
    table.to_csv(work / "bleu.csv")
    examples.to_csv(work / "examples.csv", index=False)
    (work / "speed.json").write_text(json.dumps({"titles_per_second": speed, "notes": notes}, indent=2))


if __name__ == "__main__":
    main()
