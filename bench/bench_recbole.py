"""Our five ID baselines against RecBole 1.2.1's on MovieLens-100k, on exactly the same split.

ML-100k ships inside RecBole's wheel (``recbole/dataset_example/ml-100k``). Each user's ratings, in time
order (ties: file order), form one sequence; leave-one-out: the last item is the test target, the one
before it the validation target, and every earlier position is a training target (all prefixes, i.e.
RecBole's own sequential augmentation). Prefixes keep their last 50 items. The examples are written once
as RecBole session-style benchmark files (``session_id, item_id_list, item_id``; ``benchmark_filename``,
so RecBole does no augmentation or re-splitting of its own) and given to our models as ``Sessions``; the
vocabulary is every item of the three files for both. Evaluation is full ranking over all items, session
items not excluded on either side (RecBole does not exclude them for sequential models). Both sides use
the same sizes (RecBole's defaults per model), Adam with the same learning rate and batch size, the same
number of epochs, and keep the epoch with the best validation MRR@100.

RecBole 1.2.1 needs shims on numpy 2 / torch 2.13, applied by ``apply_recbole_shims()`` before it is
imported (each is explained there and in bench/README.md). Run it in a venv that has RecBole:

    python -m venv --system-site-packages /tmp/recbole-venv
    /tmp/recbole-venv/bin/pip install "recbole==1.2.1" "setuptools<80"
    /tmp/recbole-venv/bin/python bench/bench_recbole.py --work /tmp/recbole-bench --epochs 3

Prints a table (MRR@10, MRR@100, Recall@10, Recall@100, NDCG@10, training seconds per epoch; ours,
RecBole and the ratio ours/RecBole) and writes it to ``WORK/results.md`` and ``WORK/results.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # id_baselines is a top-level package of this repository

logger = logging.getLogger("bench_recbole")

MAX_LENGTH = 50
DATASET = "ml-100k-loo"
METRICS = ("MRR@10", "MRR@100", "Recall@10", "Recall@100", "NDCG@10")
RECBOLE_NAMES = {"gru4rec": "GRU4Rec", "narm": "NARM", "stamp": "STAMP", "srgnn": "SRGNN", "core": "CORE"}

SHARED = {"embedding_size": 64}
"""Settings given to both sides for every model, in our names."""

PER_MODEL = {
    # ours (BaselineConfig fields) and RecBole's (its yaml keys), RecBole's defaults for each model
    "gru4rec": ({"hidden_size": 128, "num_layers": 1, "embedding_dropout": 0.3},
                {"hidden_size": 128, "num_layers": 1, "dropout_prob": 0.3}),
    "narm": ({"hidden_size": 128, "num_layers": 1, "embedding_dropout": 0.25, "hidden_dropout": 0.5},
             {"hidden_size": 128, "n_layers": 1, "dropout_probs": [0.25, 0.5]}),
    "stamp": ({}, {}),
    "srgnn": ({"gnn_steps": 1}, {"step": 1}),
    "core": ({"core_variant": "trm", "transformer_layers": 2, "num_heads": 2, "inner_size": 256,
              "hidden_dropout": 0.5, "attention_dropout": 0.5, "session_dropout": 0.2, "item_dropout": 0.2,
              "temperature": 0.07},
             {"dnn_type": "trm", "n_layers": 2, "n_heads": 2, "inner_size": 256, "hidden_dropout_prob": 0.5,
              "attn_dropout_prob": 0.5, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "initializer_range": 0.02,
              "sess_dropout": 0.2, "item_dropout": 0.2, "temperature": 0.07}),
}


def apply_recbole_shims() -> None:
    """Make RecBole 1.2.1 importable and runnable on numpy 2 and torch >= 2.6, in this process only.

    1. numpy aliases removed in numpy 1.24/2.0 that RecBole still uses (``np.float`` in its metrics,
       ``np.bool`` in its evaluator, ``np.long`` in its layers, and its configurator assigns
       ``np.float = np.float_`` etc., which fails because ``np.float_`` itself is gone in numpy 2).
    2. ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, which refuses RecBole's own
       checkpoints (they pickle its Config); RecBole calls it without the argument when it reloads the best
       model, so the default becomes ``weights_only=False``. Only files this run just wrote are loaded;
       callers that pass ``weights_only`` explicitly (ours do) are unaffected.
    3. (outside this function) ``setuptools<80`` in RecBole's venv: ``recbole.quick_start`` imports ray,
       which imports ``pkg_resources``, removed from setuptools 80. This script does not import
       ``quick_start`` (it uses Config/create_dataset/get_trainer directly), but the venv pins it so that
       RecBole's documented entry points work too.
    """
    aliases = {
        "float": np.float64, "int": np.int_, "bool": np.bool_, "bool8": np.bool_, "object": np.object_,
        "str": np.str_, "long": np.int64, "complex": np.complex128, "float_": np.float64,
        "complex_": np.complex128, "unicode_": np.str_, "int_": np.int_,
    }
    for name, target in aliases.items():
        if not hasattr(np, name):
            setattr(np, name, target)
    import torch

    if not getattr(torch.load, "_recbole_shim", False):
        patched = functools.partial(torch.load, weights_only=False)
        patched._recbole_shim = True  # type: ignore[attr-defined]
        torch.load = patched


# --- data --------------------------------------------------------------------------------------------

def leave_one_out(inter_path: Path) -> dict[str, pd.DataFrame]:
    """ML-100k ratings -> (session_id, prefix items, target) examples of the train/valid/test splits."""
    ratings = pd.read_csv(inter_path, sep="\t")
    ratings.columns = [c.split(":")[0] for c in ratings.columns]
    ratings = ratings.sort_values(["user_id", "timestamp"], kind="stable")
    splits: dict[str, list[tuple[str, list[str], str]]] = {"train": [], "valid": [], "test": []}
    for user, items in ratings.groupby("user_id", sort=True)["item_id"]:
        seq = items.astype(str).tolist()
        n = len(seq)
        for t in range(1, n):
            split = "test" if t == n - 1 else "valid" if t == n - 2 else "train"
            splits[split].append((f"{user}-{t}", seq[max(0, t - MAX_LENGTH):t], seq[t]))
    return {k: pd.DataFrame(v, columns=["session_id", "items", "target"]) for k, v in splits.items()}


def write_benchmark_files(splits: dict[str, pd.DataFrame], folder: Path) -> None:
    """RecBole session-style atomic files ``DATASET.{train,valid,test}.inter``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, frame in splits.items():
        with open(folder / f"{DATASET}.{split}.inter", "w", encoding="utf-8") as f:
            f.write("session_id:token\titem_id_list:token_seq\titem_id:token\n")
            for sid, items, target in frame.itertuples(index=False):
                f.write(f"{sid}\t{' '.join(items)}\t{target}\n")


def to_sessions(frame: pd.DataFrame, catalog):
    """Examples as our ``Sessions`` (one locale, UK): prefix = session items, target = next item."""
    from recformer_m2.data import Sessions

    lengths = frame["items"].map(len).to_numpy()
    flat = np.concatenate(frame["items"].to_numpy())
    return Sessions(
        items=catalog.codes(flat), offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        locale=np.zeros(len(frame), dtype=np.int8), next_item=catalog.codes(frame["target"].to_numpy()),
        source="ml-100k",
    )


# --- the two sides -----------------------------------------------------------------------------------

def run_ours(model: str, splits: dict[str, pd.DataFrame], work: Path, epochs: int, batch_size: int, lr: float, seed: int) -> dict:
    from id_baselines import BaselineConfig, load_baseline, train_on_sessions
    from id_baselines.data import ItemVocab
    from recformer_m2.data import Catalog
    from recformer_m2.metrics import evaluate_rankings

    ids = pd.unique(pd.concat([splits[s]["target"] for s in splits] + [splits[s]["items"].explode() for s in splits]))
    catalog = Catalog(pd.DataFrame({"id": ids, "locale": "UK", "title": ids}))
    sessions = {split: to_sessions(frame, catalog) for split, frame in splits.items()}
    config = BaselineConfig(
        **SHARED, **PER_MODEL[model][0], max_length=MAX_LENGTH, augment=False, batch_size=batch_size,
        eval_batch_size=2048, learning_rate=lr, max_epochs=epochs, patience=epochs, seed=seed, resume=False,
        bucket_by_length=False,  # plain shuffled batches, as RecBole's (ML-100k prefixes are mostly 50 long)
        progress=False, exclude_session_items=False, locale_mask=False,
    )
    out = work / "ours" / model
    result = train_on_sessions(model, config, catalog, sessions["train"], out, valid=sessions["valid"],
                               vocab=ItemVocab(catalog.ids))
    ranked = load_baseline(out, catalog).recommend(sessions["test"], k=100, progress=False)
    table = evaluate_rankings(ranked, sessions["test"].next_item, ["UK"] * len(ranked), ks=(10, 100))
    metrics = {m: float(table.loc["overall", m]) for m in METRICS}
    return {**metrics, "s/epoch": result.seconds_per_epoch, "epochs": len(result.history), "best_valid_MRR@100": result.best_mrr}


def run_recbole(model: str, work: Path, epochs: int, batch_size: int, lr: float, seed: int) -> dict:
    apply_recbole_shims()
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    name = RECBOLE_NAMES[model]
    config_dict = {
        "data_path": str(work / "recbole_data"), "checkpoint_dir": str(work / "recbole_saved" / model),
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["session_id", "item_id_list", "item_id"]}, "alias_of_item_id": ["item_id_list"],
        "USER_ID_FIELD": "session_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": None,
        "MAX_ITEM_LIST_LENGTH": MAX_LENGTH, "loss_type": "CE", "train_neg_sample_args": None,
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "group_by": None, "mode": "full"},
        "metrics": ["MRR", "Recall", "NDCG"], "topk": [10, 100], "valid_metric": "MRR@100",
        "epochs": epochs, "stopping_step": epochs, "train_batch_size": batch_size, "eval_batch_size": 2048,
        "learning_rate": lr, "weight_decay": 0.0, "seed": seed, "reproducibility": True,
        "use_gpu": False, "show_progress": False, "log_wandb": False, "worker": 0,
        **SHARED, **PER_MODEL[model][1],
    }
    config = Config(model=name, dataset=DATASET, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    seconds: list[float] = []
    train_epoch = trainer._train_epoch

    def timed_train_epoch(*args, **kwargs):  # training time only, as on our side
        start = time.perf_counter()
        out = train_epoch(*args, **kwargs)
        seconds.append(time.perf_counter() - start)
        return out

    trainer._train_epoch = timed_train_epoch
    best_valid, _ = trainer.fit(train_data, valid_data, saved=True, show_progress=False, verbose=False)
    result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    metrics = {m: float(result[m.lower()]) for m in METRICS}
    return {**metrics, "s/epoch": float(np.mean(seconds)), "epochs": len(seconds), "best_valid_MRR@100": float(best_valid)}


def format_table(results: dict[str, dict[str, dict]]) -> str:
    header = ["model", "side"] + list(METRICS) + ["s/epoch", "epochs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, sides in results.items():
        for side in ("ours", "recbole"):
            r = sides[side]
            lines.append(f"| {model} | {side} | " + " | ".join(f"{r[m]:.4f}" for m in METRICS)
                         + f" | {r['s/epoch']:.1f} | {r['epochs']} |")
        ratio = [sides["ours"][m] / sides["recbole"][m] if sides["recbole"][m] else float("nan") for m in (*METRICS, "s/epoch")]
        lines.append(f"| {model} | ours/RecBole | " + " | ".join(f"{x:.3f}" for x in ratio) + " | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="folder for the converted data, checkpoints and results")
    parser.add_argument("--models", default=",".join(RECBOLE_NAMES))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both sides (1 is faster on an oversubscribed machine)")
    args = parser.parse_args()
    apply_recbole_shims()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    import recbole

    work = Path(args.work).resolve()
    splits = leave_one_out(Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.inter")
    write_benchmark_files(splits, work / "recbole_data" / DATASET)
    logger.info("ML-100k leave-one-out: %s examples", {k: len(v) for k, v in splits.items()})
    os.chdir(work)  # RecBole writes log/ and log_tensorboard/ into the working directory
    results_path = work / "results.json"
    results: dict[str, dict[str, dict]] = json.loads(results_path.read_text()) if results_path.exists() else {}
    for model in args.models.split(","):
        sides = results.setdefault(model, {})
        # Alternate which side runs first, so a drift in machine load does not always favour one side.
        order = ("ours", "recbole") if len(results) % 2 else ("recbole", "ours")
        for side in order:
            if side in sides:
                continue
            logger.info("== %s: %s", model, side)
            if side == "ours":
                sides[side] = run_ours(model, splits, work, args.epochs, args.batch_size, args.lr, args.seed)
            else:
                sides[side] = run_recbole(model, work, args.epochs, args.batch_size, args.lr, args.seed)
            logger.info("%s %s: %s", model, side, sides[side])
            results_path.write_text(json.dumps(results, indent=2) + "\n")
    done = {m: s for m, s in results.items() if {"ours", "recbole"} <= s.keys()}
    text = format_table(done)
    (work / "results.md").write_text(text, encoding="utf-8")
    print(text)  # the benchmark's result, on stdout


if __name__ == "__main__":
    main()
