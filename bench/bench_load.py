"""Full-scale load benchmark: cold parse + index, then cached load, each in a fresh process.

Generates ``--scale full`` synthetic data (the real Amazon-M2 size: 1.41M product rows, 3.6M training
sessions) unless ``--data`` names a folder, then measures wall time and peak RSS of

- cold: parse every file, build the catalog index, write the content-keyed caches (empty cache dir);
- cached: the same with the caches present (what every later run pays).

Targets (issue 2): cold under 120 s and 8 GiB peak RSS on 2 cores; cached under 15 s. Printed as ratios.

    python bench/bench_load.py --work /tmp/m2-bench
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"cold_seconds": 120.0, "cold_peak_gib": 8.0, "cached_seconds": 15.0}


def load_once(data: str, cache: str) -> dict:
    """Load everything a method needs; runs inside a child process so its peak RSS is its own."""
    from recformer_m2.data import M2Data

    start = time.perf_counter()
    m2 = M2Data(data, cache_dir=cache)
    catalog = m2.catalog
    train = m2.train
    tests = [m2.test(task) for task in (1, 2, 3)]
    seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux
    return {
        "seconds": seconds, "peak_gib": peak_gib, "products": len(catalog), "train_sessions": len(train),
        "test_sessions": [len(t) for t in tests],
    }


def measure(data: Path, cache: Path) -> dict:
    code = (
        "import json, sys; sys.path.insert(0, 'bench'); from bench_load import load_once; "
        f"print(json.dumps(load_once({str(data)!r}, {str(cache)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="an existing data folder (default: generate full-scale data)")
    parser.add_argument("--work", default=None, help="where generated data goes (default: a temp folder)")
    parser.add_argument("--scale", default="full")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="m2-bench-"))
    data = Path(args.data) if args.data else work / f"synthetic-{args.scale}"
    if not args.data and not (data / "sessions_train.csv").exists():
        from recformer_m2.synth import generate

        start = time.perf_counter()
        generate(data, scale=args.scale, seed=0)
        logging.info("generated %s in %.0f s", data, time.perf_counter() - start)
    cache = Path(tempfile.mkdtemp(prefix="m2-cache-", dir=work))
    cold = measure(data, cache)
    cached = measure(data, cache)
    size_mib = sum(p.stat().st_size for p in data.glob("*.csv")) / 2**20
    print(f"data: {data} ({size_mib:.0f} MiB of CSV), {cold['products']:,} product rows, "
          f"{cold['train_sessions']:,} training sessions, test sessions {cold['test_sessions']}")
    rows = [
        ("cold load + index", cold["seconds"], "s", TARGETS["cold_seconds"]),
        ("cold peak RSS", cold["peak_gib"], "GiB", TARGETS["cold_peak_gib"]),
        ("cached load + index", cached["seconds"], "s", TARGETS["cached_seconds"]),
        ("cached peak RSS", cached["peak_gib"], "GiB", TARGETS["cold_peak_gib"]),
    ]
    print(f"{'measure':<22}{'value':>10}  {'target':>8}  ratio (value/target, <1 meets it)")
    for name, value, unit, target in rows:
        print(f"{name:<22}{value:>8.2f} {unit:<3}{target:>6.1f} {unit:<3} {value / target:.2f}")


if __name__ == "__main__":
    main()
