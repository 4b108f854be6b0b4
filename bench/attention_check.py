"""Dense against Longformer attention on one device, in about a minute, without data or a tokenizer: the numbers
agree (fp32 outputs, loss and gradients; bf16 autocast loss) and how much faster the dense path is
(pretraining steps/s, item encoding items/s) at a ``pretrain/configs`` size.

Inputs are random tokens in the collator's layout (CLS, item positions from 1, right padding; sessions of
``--min-len`` to ``--max-len`` tokens, next items and catalog items of 16 to 80), so the speed figures are those
of the encoder, not of a real batch mix. ``bench/gpu_check.sh`` gives the figures on synthetic sessions.

    python bench/attention_check.py --device cuda --config base
    python bench/attention_check.py --device cpu --config tiny --steps 2   # does it run
"""

from __future__ import annotations

import argparse
import logging
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from recformer_m2.config import load_config
from recformer_m2.models import RecformerConfig, RecformerForPretraining, RecformerModel
from recformer_m2.pretraining.config import PretrainConfig

logger = logging.getLogger("attention_check")
ROOT = Path(__file__).resolve().parents[1]
IMPLEMENTATIONS = ("dense", "longformer")


def model_config(name: str, implementation: str) -> tuple[RecformerConfig, int]:
    """The architecture and batch size of ``pretrain/configs/<name>.json`` with ``implementation``."""
    pretrain = load_config(PretrainConfig, ROOT / "pretrain" / "configs" / f"{name}.json")
    values = {**pretrain.model.to_dict(), "vocab_size": pretrain.vocab_size,
              "attention_implementation": implementation}
    return RecformerConfig.from_dict(values), pretrain.batch_size


def layout(lengths: torch.Tensor, vocab: int, g: torch.Generator, prefix: str = "") -> dict[str, torch.Tensor]:
    """Right-padded random inputs of the given lengths: CLS, then items of ~20 tokens (positions 1, 2, ...)."""
    batch_size, seq_len = len(lengths), int(lengths.max())
    positions = torch.arange(seq_len)
    mask = (positions[None] < lengths[:, None]).long()
    ids = torch.randint(5, vocab, (batch_size, seq_len), generator=g) * mask
    ids[:, 0] = 3
    types = torch.where(mask.bool(), torch.randint(1, 3, (batch_size, seq_len), generator=g), 3)
    types[:, 0] = 0
    items = ((positions[None] - 1).clamp(min=0) // 20 + 1).expand(batch_size, -1) * mask
    items = items.clamp(max=10)
    items[:, 0] = 0
    return {prefix + "input_ids": ids, prefix + "attention_mask": mask, prefix + "token_type_ids": types,
            prefix + "item_position_ids": items}


def pretraining_batch(batch_size: int, config: RecformerConfig, args: argparse.Namespace,
                      g: torch.Generator) -> dict[str, torch.Tensor]:
    lengths = torch.randint(args.min_len, min(args.max_len, config.max_token_num) + 1, (batch_size,), generator=g)
    batch = layout(lengths, config.vocab_size, g)
    labelled = (torch.rand(batch["input_ids"].shape, generator=g) < 0.15) & (batch["token_type_ids"] == 2)
    batch["mlm_labels"] = torch.where(labelled, batch["input_ids"], -100)
    batch.update(layout(torch.randint(16, 81, (batch_size,), generator=g), config.vocab_size, g, prefix="next_"))
    batch["item_ids"] = torch.randperm(10 * batch_size, generator=g)[:batch_size]
    return batch


def build(cls, config: RecformerConfig, device: torch.device, seed: int):
    torch.manual_seed(seed)
    return cls(config).to(device)


def agreement(name: str, device: torch.device, args: argparse.Namespace) -> None:
    """Largest differences between the implementations: fp32 eval outputs, loss and gradients; bf16 loss."""
    models = {i: build(RecformerForPretraining, model_config(name, i)[0], device, args.seed).eval()
              for i in IMPLEMENTATIONS}
    config, batch_size = model_config(name, "dense")
    g = torch.Generator().manual_seed(args.seed)
    batch = {k: v.to(device) for k, v in pretraining_batch(min(batch_size, 8), config, args, g).items()}
    out, grads = {}, {}
    for i, model in models.items():
        out[i] = model(**batch)
        out[i].loss.backward()
        grads[i] = {n: p.grad.float() for n, p in model.named_parameters() if p.grad is not None}
    hidden = {i: models[i].recformer(*(batch[k] for k in ("input_ids", "attention_mask", "token_type_ids",
                                                          "item_position_ids"))).last_hidden_state.detach()
              for i in IMPLEMENTATIONS}
    grad_diff = max((grads["dense"][n] - g_).abs().max().item() for n, g_ in grads["longformer"].items())
    grad_scale = max(g_.abs().max().item() for g_ in grads["longformer"].values())
    logger.info("fp32 %s: |hidden| diff max %.2e (largest |hidden| %.2f), loss %.6f vs %.6f, |gradient| diff max "
                "%.2e (largest |gradient| %.2e)", name, (hidden["dense"] - hidden["longformer"]).abs().max().item(),
                hidden["longformer"].abs().max().item(), out["dense"].loss.item(), out["longformer"].loss.item(),
                grad_diff, grad_scale)
    if device.type == "cuda":
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            losses = {i: m(**batch).loss.item() for i, m in models.items()}
        logger.info("bf16 autocast %s: loss dense %.5f, longformer %.5f", name, losses["dense"], losses["longformer"])


def speed(name: str, device: torch.device, args: argparse.Namespace) -> None:
    """Pretraining steps/s (AdamW, bf16 autocast on CUDA) and item encoding items/s, each implementation alike."""
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    config, batch_size = model_config(name, "dense")
    g = torch.Generator().manual_seed(args.seed)
    batches = [{k: v.to(device) for k, v in pretraining_batch(batch_size, config, args, g).items()}
               for _ in range(args.warmup + args.steps)]
    items = [{k: v.to(device) for k, v in layout(torch.randint(16, 81, (args.encode_batch,), generator=g),
                                                 config.vocab_size, g).items()}
             for _ in range(args.warmup + args.steps)]
    rates = {}
    for implementation in IMPLEMENTATIONS:
        model = build(RecformerForPretraining, model_config(name, implementation)[0], device, args.seed).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for i, batch in enumerate(batches):
            if i == args.warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
            with autocast:
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        steps_s = args.steps / (time.perf_counter() - start)
        encoder = model.recformer.eval()
        with torch.no_grad(), autocast:
            for i, batch in enumerate(items):
                if i == args.warmup:
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                encoder(**batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        items_s = args.steps * args.encode_batch / (time.perf_counter() - start)
        rates[implementation] = (steps_s, items_s)
        logger.info("%s %s: pretraining %.2f steps/s (batch %d), encoding %.0f items/s (batch %d)", name,
                    implementation, steps_s, batch_size, items_s, args.encode_batch)
        del model, optimizer, encoder
    dense, slow = rates["dense"], rates["longformer"]
    logger.info("%s dense/longformer: x%.2f steps/s, x%.2f items/s", name, dense[0] / slow[0], dense[1] / slow[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--config", nargs="+", default=["small", "base"], help="pretrain/configs names")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--min-len", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=1024)
    parser.add_argument("--encode-batch", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = torch.device(args.device)
    logger.info("torch %s on %s", torch.__version__,
                torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu")
    for name in args.config:
        agreement(name, device, args)
        speed(name, device, args)


if __name__ == "__main__":
    main()
