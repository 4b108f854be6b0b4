"""Turn a Longformer checkpoint already on disk into Recformer initial weights; nothing is downloaded.

    python scripts/save_longformer_ckpt.py --longformer /models/longformer-base-4096 \\
        --out longformer_ckpt/longformer-base-4096 --attention-window 64

The source folder is a ``LongformerModel`` or ``LongformerForMaskedLM`` ``save_pretrained`` folder
(config, weights as safetensors or ``pytorch_model.bin``, possibly sharded, and its tokenizer). The
output folder holds a ``RecformerForPretraining`` (config + weights, loadable with
``RecformerForPretraining.from_pretrained_strict`` and no allowances), the Longformer's tokenizer
(loadable with ``recformer_m2.tokenizer.load_tokenizer``) and ``conversion.json``, the record of
what happened to every weight, which is also logged:

- copied: word embeddings, embedding LayerNorm, every encoder layer, and the LM head (dense,
  layer_norm, bias) when present; the ``longformer.`` prefix becomes ``recformer.``.
- sliced: token positions. Longformer numbers non-padding tokens from ``pad_token_id + 1``
  (fairseq's ``create_position_ids_from_input_ids``); Recformer numbers them from 0 at CLS. So our
  row ``i`` is Longformer's row ``i + pad_token_id + 1``, and the rows before it (the padding row,
  and row 0 for RoBERTa's pad id 1) are dropped.
- expanded: Longformer has one token type; each of Recformer's ``token_type_size`` rows (CLS, KEY,
  VALUE, PAD) starts as a copy of it, so at step 0 the token type changes nothing.
- new: item-position embeddings, zeros by default: with zeros (and the copies above) the converted
  encoder reproduces the Longformer's token states on plain text, and training learns the item
  positions from there (``--item-position-init normal`` uses the model's init N(0,
  initializer_range) instead). The LM head is new (model init, zero bias) only when the source has
  none, i.e. a bare ``LongformerModel``.
- dropped on purpose: the pooler (Recformer pools the CLS state with no dense layer), the
  ``position_ids`` buffer of old checkpoints, and the decoder weight and bias, which are tied to
  the word embeddings and the LM-head bias (checked equal, else it raises).

Any other source weight raises ``ValueError`` naming it, as does a shape that does not fit.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import PreTrainedTokenizerBase

from recformer_m2.models import POOLER_TYPES, RecformerConfig, RecformerForPretraining
from recformer_m2.tokenizer import load_tokenizer, special_token_ids

logger = logging.getLogger(__name__)

ENCODER_PREFIX = "recformer."
"""Prefix of the encoder's weights in ``RecformerForPretraining`` (``base_model_prefix``)."""

LONGFORMER_PREFIX = "longformer."
"""Prefix of the encoder's weights in ``LongformerForMaskedLM``; a bare ``LongformerModel`` has none."""

SHARED_CONFIG_FIELDS: tuple[str, ...] = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range", "layer_norm_eps",
    "attention_window", "pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id",
)
"""Longformer config fields whose values the Recformer config takes over unchanged."""

RECFORMER_CLI_FIELDS: tuple[str, ...] = (
    "max_attr_num", "max_attr_length", "max_item_embeddings", "max_token_num", "token_type_size",
    "pooler_type", "temperature", "mlm_weight", "item_cl_weight", "attention_window", "max_position_embeddings",
)
"""RecformerConfig fields settable from the command line; unset ones keep RecformerConfig's defaults
(``attention_window`` the Longformer's, ``max_position_embeddings`` every row the Longformer has)."""

ITEM_POSITION_INITS: tuple[str, ...] = ("zeros", "normal")

WEIGHT_FILES: tuple[str, ...] = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)

_DROPPED_PATTERNS = {
    r"pooler\..*": "Recformer pools the CLS state without a dense layer",
    r"embeddings\.position_ids": "a buffer, recomputed by the model",
}
_LEGACY_LAYER_NORM = {".gamma": ".weight", ".beta": ".bias"}
"""Old checkpoints name LayerNorm parameters gamma/beta; transformers' own loader renames them too."""


@dataclass
class ConversionReport:
    """What became of every weight: target names grouped by how they were made, source names dropped."""

    source: str
    out: str
    copied: list[str] = field(default_factory=list)
    sliced: list[str] = field(default_factory=list)
    expanded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    tied: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)

    def log(self) -> None:
        """Log each group, with ``layer.N`` indices folded so that a 12-layer model stays readable."""
        logger.info("Converted %s -> %s", self.source, self.out)
        for name in ("copied", "sliced", "expanded", "new", "tied"):
            names = getattr(self, name)
            logger.info("%s: %d tensors", name, len(names))
            for line in _fold_layers(names):
                logger.info("  %s", line)
        logger.info("dropped from the source: %d tensors", len(self.dropped))
        for key, why in self.dropped.items():
            logger.info("  %s (%s)", key, why)


def _fold_layers(names: list[str]) -> list[str]:
    """``a.layer.0.b``, ``a.layer.1.b`` -> ``a.layer.{0..1}.b``: one line per distinct per-layer name."""
    groups: dict[str, list[int]] = {}
    for name in names:
        match = re.search(r"\.layer\.(\d+)\.", name)
        folded = name if match is None else name[: match.start()] + ".layer.{}." + name[match.end() :]
        groups.setdefault(folded, []).append(-1 if match is None else int(match.group(1)))
    lines = []
    for folded, layers in groups.items():
        if layers == [-1]:
            lines.append(folded)
        else:
            lines.append(folded.replace("{}", f"{{{min(layers)}..{max(layers)}}}"))
    return lines


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a ``save_pretrained`` folder, from single or sharded safetensors or ``.bin`` files."""
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            shards = sorted(set(json.loads(path.read_text(encoding="utf-8"))["weight_map"].values()))
            files = [folder / shard for shard in shards]
        else:
            files = [path]
        state: dict[str, torch.Tensor] = {}
        for file in files:
            if file.suffix == ".safetensors":
                state.update(load_file(str(file)))
            else:
                state.update(torch.load(file, map_location="cpu", weights_only=True))
        return state
    raise FileNotFoundError(f"{folder}: no weights (expected one of {', '.join(WEIGHT_FILES)})")


def read_longformer_config(folder: Path) -> dict:
    """The source ``config.json`` as a dict, after checking that it describes a Longformer."""
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no config.json, so this is not a save_pretrained folder")
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("model_type") != "longformer":
        raise ValueError(f"{path}: model_type is {config.get('model_type')!r}, expected 'longformer'")
    return config


def recformer_config(source: dict, overrides: dict) -> RecformerConfig:
    """Recformer config: the Longformer's shared fields, its position rows from 0, then non-None ``overrides``."""
    kwargs = {name: source[name] for name in SHARED_CONFIG_FIELDS if name in source}
    pad = source["pad_token_id"]
    available = source["max_position_embeddings"] - (pad + 1)
    kwargs["max_position_embeddings"] = available
    kwargs.update({name: value for name, value in overrides.items() if value is not None})
    if kwargs["max_position_embeddings"] > available:
        raise ValueError(
            f"max_position_embeddings={kwargs['max_position_embeddings']} but the Longformer has "
            f"{source['max_position_embeddings']} position rows, of which {available} follow the padding row "
            f"(pad_token_id={pad})"
        )
    return RecformerConfig(**kwargs)


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, config: RecformerConfig) -> None:
    """Fail now, not at the first batch, if the tokenizer cannot drive the collator with this config."""
    ids = special_token_ids(tokenizer, ("pad", "cls", "mask"))
    if ids["pad"] != config.pad_token_id:
        raise ValueError(
            f"tokenizer pad id ({ids['pad']}) differs from the Longformer's pad_token_id ({config.pad_token_id})"
        )
    if len(tokenizer) > config.vocab_size:
        raise ValueError(
            f"tokenizer has {len(tokenizer)} tokens but the Longformer's vocab_size is {config.vocab_size}"
        )


def _normalise_key(key: str) -> str:
    """Source key without the ``longformer.`` prefix, LayerNorm gamma/beta renamed to weight/bias."""
    if key.startswith(LONGFORMER_PREFIX):
        key = key[len(LONGFORMER_PREFIX) :]
    if "LayerNorm" in key or "layer_norm" in key:
        for old, new in _LEGACY_LAYER_NORM.items():
            if key.endswith(old):
                key = key[: -len(old)] + new
    return key


def convert_state_dict(
    source: dict[str, torch.Tensor],
    model: RecformerForPretraining,
    item_position_init: str = "zeros",
    report: ConversionReport | None = None,
) -> dict[str, torch.Tensor]:
    """Map a Longformer state dict onto ``model``'s keys (see the module docstring); returns a complete state dict.

    ``model`` supplies the target names and shapes, and the values of new weights that keep the
    model's init (an LM head the source lacks). Raises ``ValueError`` naming every source weight
    that is neither used nor deliberately dropped, every shape that does not fit, and an untied decoder.
    """
    config = model.config
    report = report if report is not None else ConversionReport(source="", out="")
    target = model.state_dict()
    tied = dict(model._tied_weights_keys)  # alias -> the weight it shares storage with
    state: dict[str, torch.Tensor] = {}
    unused, problems = [], []

    def put(name: str, value: torch.Tensor, group: str, note: str = "") -> None:
        if name not in target:
            problems.append(f"{name} is not a weight of RecformerForPretraining")
        elif tuple(value.shape) != tuple(target[name].shape):
            problems.append(f"{name}: source shape {tuple(value.shape)}, Recformer shape {tuple(target[name].shape)}")
        else:
            state[name] = value.detach().to(target[name].dtype).clone()
            getattr(report, group).append(f"{name} ({note})" if note else name)

    normalised: dict[str, tuple[str, torch.Tensor]] = {}
    for raw, value in source.items():
        normalised[_normalise_key(raw)] = (raw, value)

    pad = config.pad_token_id
    decoder_weight = decoder_bias = None
    for key, (raw, value) in normalised.items():
        why_dropped = next((why for pattern, why in _DROPPED_PATTERNS.items() if re.fullmatch(pattern, key)), None)
        if why_dropped is not None:
            report.dropped[raw] = why_dropped
        elif key == "embeddings.position_embeddings.weight":
            rows = config.max_position_embeddings
            if value.shape[0] < pad + 1 + rows:
                problems.append(f"{raw}: {value.shape[0]} rows, but rows {pad + 1}..{pad + rows} are needed")
                continue
            # Longformer's first token sits at row pad + 1 (fairseq numbering); ours sits at row 0.
            put(ENCODER_PREFIX + key, value[pad + 1 : pad + 1 + rows], "sliced",
                f"row i = {raw} row i + {pad + 1}, i < {rows}")
            report.dropped[raw + f"[:{pad + 1}]"] = f"rows before the first token's (pad_token_id={pad})"
            if value.shape[0] > pad + 1 + rows:
                report.dropped[raw + f"[{pad + 1 + rows}:]"] = f"beyond max_position_embeddings={rows}"
        elif key == "embeddings.token_type_embeddings.weight":
            if value.shape[0] != 1:
                problems.append(f"{raw}: {value.shape[0]} token types; only a single row can be expanded")
                continue
            put(ENCODER_PREFIX + key, value.expand(config.token_type_size, -1), "expanded",
                f"{raw} row 0 copied into each of {config.token_type_size} rows")
        elif key.startswith(("embeddings.", "encoder.")):
            put(ENCODER_PREFIX + key, value, "copied")
        elif key == "lm_head.decoder.weight":
            decoder_weight = (raw, value)
        elif key == "lm_head.decoder.bias":
            decoder_bias = (raw, value)
        elif key in ("lm_head.dense.weight", "lm_head.dense.bias", "lm_head.layer_norm.weight",
                     "lm_head.layer_norm.bias", "lm_head.bias"):
            put(key, value, "copied")
        else:
            unused.append(raw)

    # The decoder shares storage with the word embeddings and the LM-head bias: a source that has
    # its own copies must hold the same values, or the tied Recformer head could not represent it.
    if decoder_bias is not None:
        if "lm_head.bias" not in state:
            put("lm_head.bias", decoder_bias[1], "copied")
        elif not torch.equal(decoder_bias[1].to(state["lm_head.bias"].dtype), state["lm_head.bias"]):
            problems.append(f"{decoder_bias[0]} differs from lm_head.bias, but Recformer ties them")
        report.dropped.setdefault(decoder_bias[0], "tied to lm_head.bias")
    if decoder_weight is not None:
        words = state.get(ENCODER_PREFIX + "embeddings.word_embeddings.weight")
        if words is None or not torch.equal(decoder_weight[1].to(words.dtype), words):
            problems.append(f"{decoder_weight[0]} differs from the word embeddings, but Recformer ties them")
        report.dropped[decoder_weight[0]] = "tied to the word embeddings"

    if unused:
        problems.append(f"source weights neither used nor deliberately dropped: {sorted(unused)}")
    if problems:
        raise ValueError("cannot convert the Longformer checkpoint: " + "; ".join(problems))

    # New weights, each initialised on purpose.
    item_key = ENCODER_PREFIX + "embeddings.item_position_embeddings.weight"
    if item_position_init == "zeros":
        state[item_key] = torch.zeros_like(target[item_key])
    elif item_position_init == "normal":
        state[item_key] = torch.randn_like(target[item_key]) * config.initializer_range
    else:
        raise ValueError(f"item_position_init must be one of {ITEM_POSITION_INITS}, got {item_position_init!r}")
    report.new.append(f"{item_key} ({item_position_init})")
    for name in target:
        if name.startswith("lm_head.") and name not in state and name not in tied:
            state[name] = target[name].clone()  # the model's init: normal dense, unit LayerNorm, zero bias
            report.new.append(f"{name} (model init)")
    for alias, shared in tied.items():
        state[alias] = state[shared]
        report.tied.append(f"{alias} = {shared}")

    missing = sorted(set(target) - set(state))
    if missing:
        raise ValueError(f"the Longformer checkpoint has nothing for the Recformer weights {missing}")
    return state


def convert(
    longformer_dir: str | Path,
    out_dir: str | Path,
    item_position_init: str = "zeros",
    overwrite: bool = False,
    seed: int = 0,
    **overrides,
) -> ConversionReport:
    """Write Recformer initial weights and the Longformer's tokenizer to ``out_dir``; return the report.

    ``overrides`` are RecformerConfig fields (see :data:`RECFORMER_CLI_FIELDS`); ``seed`` fixes the
    init of new weights. The written folder is reloaded strictly and compared before returning.
    """
    source_dir, out = Path(longformer_dir), Path(out_dir)
    if not source_dir.is_dir():
        what = "is a file, not a folder" if source_dir.exists() else "does not exist"
        raise FileNotFoundError(f"Longformer checkpoint folder {source_dir} {what}")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite to replace its files")
    unknown = sorted(set(overrides) - set(RECFORMER_CLI_FIELDS))
    if unknown:
        raise ValueError(f"unknown Recformer fields {unknown}; known: {list(RECFORMER_CLI_FIELDS)}")

    config = recformer_config(read_longformer_config(source_dir), overrides)
    tokenizer = load_tokenizer(source_dir)
    check_tokenizer(tokenizer, config)
    source = read_state_dict(source_dir)

    torch.manual_seed(seed)
    model = RecformerForPretraining(config)
    report = ConversionReport(source=str(source_dir), out=str(out))
    logger.info(
        "Recformer config from %s: hidden %d, %d layers, %d heads, windows %s, %d token positions, "
        "%d token types, %d item positions, vocab %d, pad id %d",
        source_dir, config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
        config.attention_window, config.max_position_embeddings, config.token_type_size,
        config.max_item_embeddings, config.vocab_size, config.pad_token_id,
    )
    state = convert_state_dict(source, model, item_position_init, report)
    model.load_state_dict(state)  # strict: every key present, none left over

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    (out / "conversion.json").write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")

    reloaded = RecformerForPretraining.from_pretrained_strict(out).state_dict()
    changed = [name for name, value in state.items() if not torch.equal(reloaded[name], value)]
    if changed:
        raise RuntimeError(f"{out}: reloaded weights differ from the converted ones: {changed}")
    if len(load_tokenizer(out)) != len(tokenizer):
        raise RuntimeError(f"{out}: the saved tokenizer does not reload with {len(tokenizer)} tokens")
    report.log()
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--longformer", required=True, help="local LongformerModel / LongformerForMaskedLM folder")
    parser.add_argument("--out", required=True, help="output folder, e.g. longformer_ckpt/longformer-base-4096")
    parser.add_argument("--item-position-init", choices=ITEM_POSITION_INITS, default="zeros",
                        help="zeros (default: step 0 equals the Longformer) or the model's normal init")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    parser.add_argument("--seed", type=int, default=0, help="init of new weights that are not zeros")
    recformer = parser.add_argument_group("RecformerConfig fields (default: RecformerConfig's)")
    recformer.add_argument("--max-attr-num", type=int)
    recformer.add_argument("--max-attr-length", type=int)
    recformer.add_argument("--max-item-embeddings", type=int)
    recformer.add_argument("--max-token-num", type=int)
    recformer.add_argument("--token-type-size", type=int)
    recformer.add_argument("--pooler-type", choices=POOLER_TYPES)
    recformer.add_argument("--temperature", type=float)
    recformer.add_argument("--mlm-weight", type=float)
    recformer.add_argument("--item-cl-weight", type=float)
    recformer.add_argument("--attention-window", type=int,
                           help="one window for every layer (default: the Longformer's)")
    recformer.add_argument("--max-position-embeddings", type=int,
                           help="token positions kept (default: all the Longformer has after its padding row)")
    return parser


def main(argv: list[str] | None = None) -> ConversionReport:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    overrides = {name: getattr(args, name) for name in RECFORMER_CLI_FIELDS}
    return convert(args.longformer, args.out, args.item_position_init, args.overwrite, args.seed, **overrides)


if __name__ == "__main__":
    main()
