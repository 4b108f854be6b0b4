"""Full-scale TextKNN benchmark: fit + recommend time and peak RSS, against CoVisitation on the same data.

``--methods covisitation,textknn,hybrid`` measures the hybrid too (its fit includes training the ranker on
held-out training sessions and fitting every source twice).

Uses full-scale synthetic data (the real Amazon-M2 size: 1.41M product rows, 3.6M training sessions,
about 330k task 1 + 2 test sessions): ``--data`` names a folder, else ``--work/synthetic-full`` is reused
when present (read-only) or generated there (about a minute, 500 MB). Each method runs in a fresh child
process, so its peak RSS is its own (it includes the loaded data, which is reported alone as ``load``):

- fit on ``sessions_train``, then recommend 100 items for every test session of tasks 1 and 2;
- MRR@100 against ``gt_task{1,2}.csv`` when present.

Targets: fit + recommend within 24 GiB on 2 cores (the machine the method must run on); time is
printed as a ratio to CoVisitation's (the named baseline), not against a fixed target.

    python bench/bench_textknn.py --work /tmp/m2-bench
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MEMORY_TARGET_GIB = 24.0


def run_once(method: str, data: str, cache: str) -> dict:
    """Load, fit and recommend with one method; runs inside a child process so its peak RSS is its own."""
    import numpy as np

    from recformer_m2.constants import LOCALES
    from recformer_m2.data import M2Data
    from recformer_m2.heuristics import CoVisitation
    from recformer_m2.hybrid import Hybrid
    from recformer_m2.metrics import evaluate_rankings
    from recformer_m2.textknn import TextKNN

    def peak_gib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux

    start = time.perf_counter()
    m2 = M2Data(data, cache_dir=cache)
    catalog, train, tests = m2.catalog, m2.train, {task: m2.test(task) for task in (1, 2)}
    result = {"load_seconds": time.perf_counter() - start, "load_peak_gib": peak_gib()}
    model = {"textknn": TextKNN, "covisitation": CoVisitation, "hybrid": Hybrid}[method]()
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(catalog, train)
    result["fit_seconds"], result["fit_cpu_seconds"] = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    ranked = {task: model.recommend(sessions, k=100, progress=False) for task, sessions in tests.items()}
    result["recommend_seconds"] = time.perf_counter() - start
    result["recommend_cpu_seconds"] = time.process_time() - cpu
    result["peak_gib"] = peak_gib()
    if isinstance(model, Hybrid):
        result["training_summary"] = {k: int(v) for k, v in model.training_summary.items()}
        result["feature_importance"] = (model.feature_importance().pipe(lambda g: g / g.sum()).head(10)
                                        .round(4).to_dict())
    result["sessions"] = sum(len(s) for s in tests.values())
    for task, sessions in tests.items():
        if m2.has_truth(task):
            targets = catalog.codes(m2.truth(task)["next_item"].to_numpy())
            targets[targets < 0] = -2
            table = evaluate_rankings(ranked[task], targets, [LOCALES[x] for x in sessions.locale])
            result[f"mrr_task{task}"] = float(table.loc["overall", "MRR@100"])
            result[f"mrr_task{task}_by_locale"] = {k: float(v) for k, v in table["MRR@100"].items()}
        assert not np.any(ranked[task] >= catalog.num_ids)
    return result


def measure(method: str, data: Path, cache: Path) -> dict:
    code = (
        "import json, sys; sys.path.insert(0, 'bench'); from bench_textknn import run_once; "
        f"print(json.dumps(run_once({method!r}, {str(data)!r}, {str(cache)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="an existing data folder (default: --work/synthetic-full)")
    parser.add_argument("--work", default="/tmp/m2-bench", help="where full-scale data is found or generated")
    parser.add_argument("--cache", default=None, help="parse cache folder (default: a new one under --work)")
    parser.add_argument("--methods", default="covisitation,textknn")
    args = parser.parse_args()
    work = Path(args.work)
    data = Path(args.data) if args.data else work / "synthetic-full"
    if not (data / "sessions_train.csv").exists():
        if args.data:
            raise SystemExit(f"{data} holds no sessions_train.csv")
        from recformer_m2.synth import generate

        start = time.perf_counter()
        generate(data, scale="full", seed=0)
        logging.info("generated %s in %.0f s", data, time.perf_counter() - start)
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="m2-cache-", dir=work))
    results = {}
    for method in args.methods.split(","):
        logging.info("measuring %s", method)
        results[method] = measure(method, data, cache)
        logging.info("%s: %s", method, json.dumps(results[method]))
    first = next(iter(results.values()))
    print(f"data: {data}, {first['sessions']:,} test sessions (tasks 1 and 2); load {first['load_seconds']:.0f} s, "
          f"{first['load_peak_gib']:.2f} GiB peak")
    print("seconds as wall (CPU); CPU time is the steadier figure on a shared machine")
    print(f"{'method':<14}{'fit s':>14}{'recommend s':>16}{'total s':>16}{'peak GiB':>10}{'MRR@100 t1':>12}{'t2':>8}")
    for method, r in results.items():
        wall, cpu = _total(r, "seconds"), _total(r, "cpu_seconds")
        print(f"{method:<14}{r['fit_seconds']:>7.0f} ({r['fit_cpu_seconds']:>4.0f})"
              f"{r['recommend_seconds']:>9.0f} ({r['recommend_cpu_seconds']:>4.0f}){wall:>9.0f} ({cpu:>4.0f})"
              f"{r['peak_gib']:>10.2f}{r.get('mrr_task1', math.nan):>12.4f}{r.get('mrr_task2', math.nan):>8.4f}")
    if "textknn" in results:
        r = results["textknn"]
        print(f"textknn peak RSS / {MEMORY_TARGET_GIB:.0f} GiB target: "
              f"{r['peak_gib'] / MEMORY_TARGET_GIB:.2f} (<1 meets it)")
        if "covisitation" in results:
            c = results["covisitation"]
            print(f"textknn / covisitation, fit + recommend: wall {_total(r, 'seconds') / _total(c, 'seconds'):.2f}, "
                  f"CPU {_total(r, 'cpu_seconds') / _total(c, 'cpu_seconds'):.2f}")


def _total(result: dict, unit: str) -> float:
    return result[f"fit_{unit}"] + result[f"recommend_{unit}"]


if __name__ == "__main__":
    main()
