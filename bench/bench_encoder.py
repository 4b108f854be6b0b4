"""Training throughput of the Recformer encoder against a bare transformers ``LongformerModel``, and of the collator.

Targets (issue): our embeddings, collator-built inputs and losses cost at most 15% over a bare
``LongformerModel`` of the same size doing the same encoder work (time ratio ours/bare <= 1.15);
collation keeps the model fed (collated sessions/s >= 5x the sessions/s the model trains on).

Everything runs on the same pre-collated batches (``SessionCollator``: masked sessions + MLM labels,
next items, next-item ids), built from ``small`` synthetic data (or ``--data``) with a catalog
tokenizer trained on it (or ``--tokenizer``). Timed, after ``--warmup`` untimed steps, per step:

- ours: batch to the device, ``RecformerForPretraining`` forward (session pass, MLM head on the
  masked positions, next-item pass, in-batch contrastive loss), backward, AdamW step;
- bare: the same ``input_ids``/``attention_mask`` of both passes to the device, ``LongformerModel``
  (same hidden size, layers, heads, intermediate size, windows, vocabulary and token positions;
  global attention on CLS as ours) on each pass, loss = mean square of the two pooled outputs,
  backward, AdamW step;
- with ``--breakdown``, our encoder alone: ``RecformerModel`` on both passes with the bare model's
  loss, which splits our overhead into embeddings/inputs (encoder/bare) and MLM head + losses
  (ours/encoder);
- collation alone, on CPU in this process: a fresh collator (empty item-token cache, as at the
  start of an epoch) and then the same one again (warm cache);
- with ``--compare-attention``, ours again with ``attention_implementation="longformer"`` (transformers'
  sliding chunks; "ours" uses the config default, the dense masked-SDPA path of
  ``recformer_m2/models/attention.py``), and item encoding (``RecformerModel`` in eval mode without
  gradients on the sessions' items and next items, one item per row as an item table is built) with either
  implementation: steps/s, items/s and the dense/longformer ratio of each.

The models take turns batch by batch (the first one alternating) and each step is timed alone
between device synchronisations, so load from other processes on a shared machine lands on both
alike; ``--rounds R`` passes over the batches R times and keeps each batch's fastest step. On a CPU
shared with other jobs use ``--threads 1``: with more, torch's worker threads spin waiting for a
descheduled partner (seen on a loaded 2-core machine: 2-13 s per step with 2 threads, 0.9 s with
1). Tokens/s counts non-padding tokens of both passes; sessions/s counts training sessions.

Model FLOP utilisation (CUDA only) uses model FLOPs per non-padding token for one training step
(backward = 2 x forward, so training = 3 x forward):

    6 * N  +  12 * n_layers * hidden * (window + 1)

``N`` is the number of encoder weights applied to every token (Q, K, V, output, the global K and V
projections, the feed-forward; 2 FLOPs per weight forward). The attention term is QK^T and AV, each
2 * hidden FLOPs per key forward, with ``window + 1`` keys per token (window/2 each side plus the
token). Embeddings (lookups), the global query projection and global attention on CLS (a few keys
per token), our MLM head and the losses are left out: the formula counts the encoder work that both
models share, so the MFU of ours is lower than the bare one's exactly by our overhead. Peak from
``--peak-tflops`` (default 989: H100 SXM bf16 dense; give the fp32/tf32 figure with ``--dtype fp32``).

    python bench/bench_encoder.py --config small --device cpu --batches 8 --warmup 2 --rounds 2 --breakdown --threads 1
    python bench/bench_encoder.py --config base --device cuda --dtype bf16 --batch-size 32
    python bench/bench_encoder.py --config small --device cpu --compare-attention --threads 1
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from transformers import LongformerConfig, LongformerModel

from recformer_m2.data import M2Data
from recformer_m2.encode import session_items
from recformer_m2.models import RecformerConfig, RecformerForPretraining, RecformerModel, SessionCollator
from recformer_m2.tokenizer import load_tokenizer, special_token_ids, train_tokenizer

logger = logging.getLogger(__name__)

TARGETS = {"overhead": 1.15, "collation_ratio": 5.0}

LABELS = {
    "ours": "ours: RecformerForPretraining",
    "bare": "bare: LongformerModel",
    "encoder": "ours encoder alone: RecformerModel",
    "longformer": "ours, longformer attention",
}

SIZES: dict[str, dict] = {
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                  attention_window=64, max_token_num=512, max_position_embeddings=512),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 attention_window=64, max_token_num=1024, max_position_embeddings=1024),
}
"""Model sizes: ``base`` is Recformer's (longformer-base with window 64, 1024 tokens); ``small`` fits a CPU."""

PRETRAINING_KEYS = (
    "input_ids", "attention_mask", "token_type_ids", "item_position_ids", "mlm_labels",
    "next_input_ids", "next_attention_mask", "next_token_type_ids", "next_item_position_ids", "item_ids",
)
"""What ``RecformerForPretraining`` reads of a batch: the masked session with its labels, the next item and its id."""
ENCODER_KEYS = ("input_ids", "attention_mask", "token_type_ids", "item_position_ids")
"""What ``RecformerModel`` reads for one pass (prefixed ``next_`` for the next-item pass)."""
BARE_KEYS = ("input_ids", "attention_mask", "next_input_ids", "next_attention_mask")
"""What the bare encoder reads of a batch: the tokens of both passes."""


def prepare_data(args: argparse.Namespace, work: Path) -> tuple[Path, Path, Path | None]:
    """Data folder, tokenizer folder and parse-cache folder (None: the project default), generating what is missing."""
    if args.data:
        data, cache = Path(args.data), None
    else:
        from recformer_m2.synth import generate

        data, cache = work / "synthetic-small", work / "cache"
        generate(data, scale="small", seed=args.seed)
    if args.tokenizer:
        return data, Path(args.tokenizer), cache
    catalog = M2Data(data, cache_dir=cache).catalog
    tokenizer_dir = work / "tokenizer"
    start = time.perf_counter()
    train_tokenizer((catalog.sentence(row) for row in range(len(catalog))), tokenizer_dir,
                    vocab_size=args.vocab_size, seed=args.seed)
    logger.info("tokenizer trained in %.1f s", time.perf_counter() - start)
    return data, tokenizer_dir, cache


def build_examples(data: Path, cache: Path | None, n: int, seed: int) -> tuple[list[dict], float]:
    """``n`` random training sessions as collator examples, and how many sessions/s reading their text took."""
    m2 = M2Data(data, cache_dir=cache)
    catalog, train = m2.catalog, m2.train
    start = time.perf_counter()
    next_rows = catalog.rows(train.next_item, train.locale)  # (S,), -1 where the target has no text
    usable = np.flatnonzero(next_rows >= 0)
    picked = np.random.default_rng(seed).permutation(usable)[: 2 * n]  # spares for sessions without text
    sessions = session_items(catalog, train.select(picked))
    examples = [
        {"items": items, "next_item": catalog.attributes(int(next_rows[i])), "next_item_id": int(train.next_item[i])}
        for i, items in zip(picked, sessions)
        if items
    ][:n]
    if len(examples) < n:
        raise ValueError(f"{data}: only {len(examples)} usable training sessions, {n} needed")
    return examples, len(picked) / (time.perf_counter() - start)


def model_configs(size: str, tokenizer) -> tuple[RecformerConfig, LongformerConfig]:
    """Our config and a bare Longformer config with the same encoder; Longformer numbers positions from pad + 1."""
    ids = special_token_ids(tokenizer, ("pad", "cls", "eos", "sep"))
    tokens = dict(vocab_size=len(tokenizer), pad_token_id=ids["pad"], bos_token_id=ids["cls"],
                  eos_token_id=ids["eos"], sep_token_id=ids["sep"])
    ours = RecformerConfig(**SIZES[size], **tokens)
    shared = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "attention_window",
              "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "layer_norm_eps")
    bare = LongformerConfig(
        **{name: getattr(ours, name) for name in shared}, **tokens, type_vocab_size=1,
        max_position_embeddings=ours.max_position_embeddings + ids["pad"] + 1,
    )
    return ours, bare


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(steps: dict, batches: list[dict], warmup: int, rounds: int, device: torch.device) -> dict:
    """Seconds per timed batch and model: the fastest of ``rounds`` passes over ``batches[warmup:]``.

    The models alternate batch by batch (and which goes first alternates too), so both see the
    same machine: on a shared CPU, load from other processes would otherwise land on one model's
    block of steps. Each step is timed alone, with a device synchronisation on either side.
    """
    for batch in batches[:warmup]:
        for step in steps.values():
            step(batch)
    seconds = {name: np.full(len(batches) - warmup, np.inf) for name in steps}
    for round_index in range(rounds):
        logger.info("round %d of %d: %d batches, each through %s", round_index + 1, rounds,
                    len(batches) - warmup, " and ".join(steps))
        for i, batch in enumerate(batches[warmup:]):
            names = list(steps) if (i + round_index) % 2 == 0 else list(steps)[::-1]
            for name in names:
                synchronize(device)
                start = time.perf_counter()
                steps[name](batch)
                synchronize(device)
                seconds[name][i] = min(seconds[name][i], time.perf_counter() - start)
    return seconds


def with_attention(config: RecformerConfig, implementation: str) -> RecformerConfig:
    """A copy of ``config`` computing attention with ``implementation`` (the given config is left as it is)."""
    return RecformerConfig.from_dict({**config.to_dict(), "attention_implementation": implementation})


def make_steps(ours_config: RecformerConfig, bare_config: LongformerConfig, device: torch.device, dtype: str,
               seed: int, breakdown: bool = False, compare_attention: bool = False,
               lr: float = 1e-4) -> dict[str, tuple[torch.nn.Module, Callable]]:
    """``name -> (model, training-step closure)`` for ours, bare and, with ``breakdown``, our encoder alone;
    with ``compare_attention``, ours with Longformer's sliding-chunk attention too.

    Every model is built after the same seed and has its own AdamW; bf16 means autocast mixed
    precision over fp32 weights. A step moves the tensors its model reads to the device, runs
    forward, backward and the optimizer step.
    """

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()

    def build(cls, config):
        torch.manual_seed(seed)
        return cls(config).to(device).train()

    def step_of(model: torch.nn.Module, keys, loss_of) -> Callable:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)

        def step(batch: dict) -> None:
            inputs = {k: batch[k].to(device, non_blocking=True) for k in keys}
            with autocast():
                loss = loss_of(inputs)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return step

    def pooled_square(pooled: torch.Tensor) -> torch.Tensor:
        return pooled.float().pow(2).mean()  # (B, D) -> (): the trivial loss of the baselines

    ours = build(RecformerForPretraining, ours_config)
    steps = {"ours": (ours, step_of(ours, PRETRAINING_KEYS, lambda inputs: ours(**inputs).loss))}

    bare = build(LongformerModel, bare_config)

    def bare_loss(inputs: dict) -> torch.Tensor:
        loss = 0.0
        for prefix in ("", "next_"):
            mask = inputs[prefix + "attention_mask"]
            global_mask = torch.zeros_like(mask)
            global_mask[:, 0] = 1  # CLS, as in RecformerModel
            out = bare(inputs[prefix + "input_ids"], attention_mask=mask, global_attention_mask=global_mask)
            loss = loss + pooled_square(out.pooler_output)
        return loss

    steps["bare"] = (bare, step_of(bare, BARE_KEYS, bare_loss))

    if breakdown:
        encoder = build(RecformerModel, ours_config)

        def encoder_loss(inputs: dict) -> torch.Tensor:
            return sum(
                pooled_square(encoder(*(inputs[prefix + key] for key in ENCODER_KEYS)).pooler_output)
                for prefix in ("", "next_")
            )

        steps["encoder"] = (encoder, step_of(encoder, [p + k for p in ("", "next_") for k in ENCODER_KEYS],
                                             encoder_loss))
    if compare_attention:
        slow = build(RecformerForPretraining, with_attention(ours_config, "longformer"))
        steps["longformer"] = (slow, step_of(slow, PRETRAINING_KEYS, lambda inputs: slow(**inputs).loss))
    return steps


def time_encoding(config: RecformerConfig, item_batches: list[dict], device: torch.device, dtype: str, seed: int,
                  warmup: int, rounds: int) -> dict[str, float]:
    """Items/s of ``RecformerModel`` (eval, no gradients) over ``item_batches`` with each attention implementation,
    the same seeded weights; batches alternate between the two as in :func:`time_interleaved`."""
    models = {}
    for implementation in ("dense", "longformer"):
        torch.manual_seed(seed)
        models[implementation] = RecformerModel(with_attention(config, implementation)).to(device).eval()

    def encode_with(model: RecformerModel) -> Callable:
        @torch.no_grad()
        def encode(batch: dict) -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16" else nullcontext():
                model(*(batch[k].to(device, non_blocking=True) for k in ENCODER_KEYS))
        return encode

    seconds = time_interleaved({name: encode_with(m) for name, m in models.items()}, item_batches, warmup, rounds,
                               device)
    items = sum(b["input_ids"].shape[0] for b in item_batches[warmup:])
    return {name: items / float(values.sum()) for name, values in seconds.items()}


def flops_per_token(bare: LongformerModel) -> float:
    """Training model FLOPs per token of the shared encoder work (formula in the module docstring)."""
    config = bare.config
    per_token_weights = sum(
        p.numel() for name, p in bare.encoder.named_parameters()
        if p.dim() == 2 and "query_global" not in name  # matrices only; biases and LayerNorms are noise
    )
    window = max(config.attention_window) if isinstance(config.attention_window, list) else config.attention_window
    return 6 * per_token_weights + 12 * config.num_hidden_layers * config.hidden_size * (window + 1)


def time_collation(tokenizer, config: RecformerConfig, examples: list[dict], batch_size: int, seed: int):
    """Seconds to collate every batch with a fresh collator (cold item cache), then again with it warm."""
    collator = SessionCollator(tokenizer, config, rng=seed)
    chunks = [examples[i : i + batch_size] for i in range(0, len(examples), batch_size)]
    seconds = []
    for _ in ("cold", "warm"):
        start = time.perf_counter()
        for chunk in chunks:
            collator(chunk)
        seconds.append(time.perf_counter() - start)
    return seconds


def print_table(args: argparse.Namespace, config: RecformerConfig, models: dict, per_batch: dict, tokens: int,
                padded: int, collation: tuple[float, float], lookup_rate: float, n_sessions: int,
                step_memory: dict, encoding: dict[str, float] | None = None) -> None:
    """The final table: training throughput of both models, the overhead ratio, collation against consumption."""
    cuda = args.device == "cuda"
    seconds = {name: float(values.sum()) for name, values in per_batch.items()}
    sessions = args.batches * args.batch_size
    consumed = sessions / seconds["ours"]  # sessions/s our model trains on
    overhead = seconds["ours"] / seconds["bare"]
    median_ratio = float(np.median(per_batch["ours"] / per_batch["bare"]))
    flops = flops_per_token(models["bare"])
    print()
    print(f"encoder {args.config}: hidden {config.hidden_size}, {config.num_hidden_layers} layers, "
          f"{config.num_attention_heads} heads, window {config.attention_window[0]}, <= {config.max_token_num} tokens, "
          f"vocab {config.vocab_size}; {args.device} {args.dtype}, {torch.get_num_threads()} torch threads")
    print(f"{args.batches} timed batches x {args.batch_size} sessions after {args.warmup} warmup; each batch's "
          f"fastest of {args.rounds} pass(es), models alternating; {tokens} non-padding tokens in both passes "
          f"({100 * tokens / padded:.0f}% of the padded batches)")
    header = f"{'':34}{'sessions/s':>12}{'tokens/s':>12}{'s/batch':>10}{'params':>13}"
    print(header + (f"{'MFU':>8}{'step GiB':>10}" if cuda else ""))
    for name in models:
        params = sum(p.numel() for p in models[name].parameters())
        row = (f"{LABELS[name]:34}{sessions / seconds[name]:>12.2f}{tokens / seconds[name]:>12.0f}"
               f"{seconds[name] / args.batches:>10.3f}{params:>13,}")
        if cuda:
            mfu = flops * tokens / seconds[name] / (args.peak_tflops * 1e12)
            row += f"{100 * mfu:>7.1f}%{step_memory[name]:>10.2f}"
        print(row)
    verdict = "PASS" if overhead <= TARGETS["overhead"] else "FAIL"
    if "encoder" in models:  # split the overhead: embeddings and inputs, then MLM head and losses
        print(f"{'  encoder/bare (time)':34}{seconds['encoder'] / seconds['bare']:>12.3f}  "
              f"ours/encoder {seconds['ours'] / seconds['encoder']:.3f}")
    print(f"{'overhead ours/bare (time)':34}{overhead:>12.3f}  target <= {TARGETS['overhead']:.2f}: {verdict} "
          f"(median of per-batch ratios {median_ratio:.3f})")
    if "longformer" in models:
        speedup = seconds["longformer"] / seconds["ours"]
        median = float(np.median(per_batch["longformer"] / per_batch["ours"]))
        print(f"{'attention ' + config.attention_implementation + '/longformer':34}{speedup:>12.3f}  "
              f"x steps/s of the pretraining step (median of per-batch ratios {median:.3f})")
    if encoding:
        print(f"{'item encoding (eval, no grad)':34}{'items/s':>12}")
        for name, rate in encoding.items():
            print(f"{'  attention ' + name:34}{rate:>12.1f}")
        print(f"{'  dense/longformer':34}{encoding['dense'] / encoding['longformer']:>12.3f}  x items/s")
    print(f"{'':34}{'sessions/s':>12}{'x ours':>12}")
    cold, warm = collation
    for label, secs in (("collation, cold item cache", cold), ("collation, warm item cache", warm)):
        ratio = n_sessions / secs / consumed
        verdict = "PASS" if ratio >= TARGETS["collation_ratio"] else "FAIL"
        print(f"{label:34}{n_sessions / secs:>12.1f}{ratio:>12.1f}  target >= {TARGETS['collation_ratio']:.0f}x: "
              f"{verdict}")
    print(f"{'catalog text lookup (dataset)':34}{lookup_rate:>12.1f}{lookup_rate / consumed:>12.1f}  "
          "(no target; reading item text for the examples)")
    if cuda:
        print(f"MFU counts {flops / 1e6:.1f} MFLOPs per non-padding token (6 N + 12 L D (w + 1)) against "
              f"{args.peak_tflops:g} TFLOP/s; step GiB: peak memory of one step above the resident weights and "
              "optimizer states")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(SIZES), default="small")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: autocast mixed precision over fp32 weights")
    parser.add_argument("--batches", type=int, default=10, help="timed training steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model before timing")
    parser.add_argument("--batch-size", type=int, default=8, help="sessions per batch")
    parser.add_argument("--rounds", type=int, default=1,
                        help="passes over the timed batches; each batch counts its fastest pass (noisy machines)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time RecformerModel with the bare model's trivial loss, to split the overhead")
    parser.add_argument("--compare-attention", action="store_true",
                        help="also time ours with attention_implementation='longformer', and item encoding with both")
    parser.add_argument("--encode-batch-size", type=int, default=64, help="items per batch with --compare-attention")
    parser.add_argument("--data", default=None, help="data folder (default: generate small synthetic data)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: train one on the catalog)")
    parser.add_argument("--vocab-size", type=int, default=16000, help="when training the tokenizer")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="accelerator peak for MFU (CUDA only)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); 1 is steadier on a CPU shared with other jobs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.batches < 1 or args.warmup < 0 or args.batch_size < 2 or args.rounds < 1:
        parser.error("need --batches >= 1, --warmup >= 0, --batch-size >= 2 (in-batch negatives), --rounds >= 1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    with tempfile.TemporaryDirectory(prefix="bench-encoder-") as tmp:
        data, tokenizer_dir, cache = prepare_data(args, Path(tmp))
        tokenizer = load_tokenizer(tokenizer_dir)
        ours_config, bare_config = model_configs(args.config, tokenizer)
        n_sessions = (args.warmup + args.batches) * args.batch_size
        examples, lookup_rate = build_examples(data, cache, n_sessions, args.seed)

    collator = SessionCollator(tokenizer, ours_config, rng=args.seed)
    batches = [collator(examples[i : i + args.batch_size]) for i in range(0, n_sessions, args.batch_size)]
    if device.type == "cuda":
        batches = [{k: v.pin_memory() for k, v in batch.items()} for batch in batches]
    timed = batches[args.warmup :]
    tokens = sum(int(b["attention_mask"].sum() + b["next_attention_mask"].sum()) for b in timed)
    padded = sum(b["input_ids"].numel() + b["next_input_ids"].numel() for b in timed)
    lengths = torch.cat([b["attention_mask"].sum(1) for b in timed]).float()  # (sessions,)
    logger.info("%d timed batches of %d sessions: %d non-padding tokens (%.0f%% of %d padded); "
                "session length mean %.0f, max %d tokens", args.batches, args.batch_size, tokens,
                100 * tokens / padded, padded, lengths.mean(), lengths.max())

    steps = make_steps(ours_config, bare_config, device, args.dtype, args.seed, args.breakdown,
                       args.compare_attention)
    per_batch = time_interleaved({name: step for name, (_, step) in steps.items()}, batches, args.warmup,
                                 args.rounds, device)
    step_memory: dict[str, float] = {}
    if device.type == "cuda":  # memory one step adds (activations, gradients) above what all models keep resident
        for name, (_, step) in steps.items():
            torch.cuda.synchronize(device)
            resident = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            step(batches[args.warmup])
            step_memory[name] = (torch.cuda.max_memory_allocated(device) - resident) / 2**30

    logger.info("collation: %d sessions, cold then warm item cache", n_sessions)
    cold, warm = time_collation(tokenizer, ours_config, examples, args.batch_size, args.seed)

    encoding = None
    if args.compare_attention:
        items = [item for example in examples for item in (*example["items"], example["next_item"])]
        item_batches = [collator.collate_items(items[i : i + args.encode_batch_size])
                        for i in range(0, len(items), args.encode_batch_size)]
        logger.info("item encoding: %d batches of <= %d items", len(item_batches), args.encode_batch_size)
        encoding = time_encoding(ours_config, item_batches, device, args.dtype, args.seed,
                                 min(args.warmup, len(item_batches) - 1), args.rounds)

    models = {name: model for name, (model, _) in steps.items()}
    print_table(args, ours_config, models, per_batch, tokens, padded, (cold, warm), lookup_rate, n_sessions,
                step_memory, encoding)


if __name__ == "__main__":
    main()
