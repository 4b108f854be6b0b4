"""The seq2seq model behind the title generator: transformers' ``MT5ForConditionalGeneration``.

Built from scratch at a named size with the catalog tokenizer, or loaded from a local mT5 checkpoint
(never downloaded); optionally wrapped in LoRA adapters (peft). :class:`TitleModule` is the one
Lightning training loop: teacher-forced cross-entropy, AdamW with warmup and linear decay, and a
validation that reports ``val_loss`` and greedy-decoded ``val_bleu``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from pathlib import Path
from typing import Callable

import lightning as L
import torch
from transformers import (
    LogitsProcessor, LogitsProcessorList, MT5Config, MT5ForConditionalGeneration, PreTrainedTokenizerBase,
)

from ..metrics import title_bleu
from .config import MODEL_SIZES, TitleConfig
from .edits import DRAFT, REPLACE, TITLE, WITH, decode_edit, split_words
from .inputs import DRAFT_TAG, TitlePairs

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def cpu_settings(config: TitleConfig):
    """Flush denormal floats to zero (and set torch's thread count) for the duration of a block.

    Why: a freshly initialised model's softmax yields denormal probabilities, and CPU matrix products
    over denormals run tens of times slower (measured: the LM-head gradient took 1.5 s instead of 25 ms).
    """
    threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


def scratch_model(config: TitleConfig, tokenizer: PreTrainedTokenizerBase) -> MT5ForConditionalGeneration:
    """A randomly initialised mT5 of ``config.model_size`` whose vocabulary is the tokenizer's."""
    mt5 = MT5Config(
        vocab_size=len(tokenizer),
        dropout_rate=config.dropout,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,  # shared input/output embeddings make copying source pieces easier
        **MODEL_SIZES[config.model_size],
    )
    torch.manual_seed(config.seed)
    return MT5ForConditionalGeneration(mt5)


def pretrained_model(folder: str | Path, tokenizer: PreTrainedTokenizerBase) -> MT5ForConditionalGeneration:
    """A local mT5 checkpoint, its embeddings resized when tokens were added to its tokenizer."""
    model, info = MT5ForConditionalGeneration.from_pretrained(str(folder), local_files_only=True,
                                                              output_loading_info=True)
    check_loading(folder, info, model.config.tie_word_embeddings)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    return model


def check_loading(folder: str | Path, info: dict, tied: bool) -> None:
    """Raise naming the weights a load missed or did not expect (``lm_head`` excepted when it is tied to
    the input embeddings, as it is then not stored)."""
    missing = [k for k in info.get("missing_keys", []) if not (tied and k.endswith("lm_head.weight"))]
    unexpected = list(info.get("unexpected_keys", []))
    mismatched = list(info.get("mismatched_keys", []))
    if missing or unexpected or mismatched:
        raise ValueError(f"{folder}: weights missing {missing}, unexpected {unexpected}, mismatched {mismatched}")


def add_lora(model: MT5ForConditionalGeneration, config: TitleConfig, new_token_ids: list[int]):
    """Wrap the model in LoRA adapters on ``lora_target_modules``. Added tokens' embeddings train too, and
    so does an untied ``lm_head`` then, since the decoder must learn to write the added edit codes."""
    from peft import LoraConfig, get_peft_model

    untied = not model.config.tie_word_embeddings
    lora = LoraConfig(
        task_type="SEQ_2_SEQ_LM", r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        trainable_token_indices={"shared": new_token_ids} if new_token_ids else None,
        modules_to_save=["lm_head"] if new_token_ids and untied else None,
    )
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("LoRA r=%d: %d trainable parameters of %d", config.lora_r, trainable,
                sum(p.numel() for p in model.parameters()))
    return model


def plain_model(model) -> MT5ForConditionalGeneration:
    """The model to save or generate with: LoRA adapters merged into a copy, else the model itself."""
    if hasattr(model, "merge_and_unload"):
        return copy.deepcopy(model).merge_and_unload()
    return model


class DraftBias(LogitsProcessor):
    """Adds ``bias`` to the logits of the draft codes a source holds (``<d1>`` .. ``<d{n}>``) at the first
    decoding step, where the edit script names the title it starts from: a prior, tuned on validation,
    for starting from a draft."""

    def __init__(self, token_ids: list[int], bias: float, held: torch.Tensor):
        self.token_ids, self.bias = torch.tensor(token_ids), bias
        self.held = held  # (B,) drafts each source holds

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] != 1:  # past the decoder start token: the starting title is named
            return scores
        held = self.held.repeat_interleave(scores.shape[0] // len(self.held)).to(scores.device)  # beams
        allowed = torch.arange(1, len(self.token_ids) + 1, device=scores.device)[None, :] <= held[:, None]
        scores = scores.clone()
        scores[:, self.token_ids.to(scores.device)] += self.bias * allowed
        return scores


def generation_kwargs(config: TitleConfig, tokenizer: PreTrainedTokenizerBase,
                      input_ids: torch.Tensor | None = None) -> dict:
    """Beam search, length control and the draft prior (for the sources ``input_ids``) for ``model.generate``."""
    kwargs = dict(num_beams=config.num_beams, max_new_tokens=config.max_new_tokens, do_sample=False,
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    if config.num_beams > 1:
        kwargs.update(length_penalty=config.length_penalty, early_stopping=True)
    if config.no_repeat_ngram_size > 0:
        kwargs["no_repeat_ngram_size"] = config.no_repeat_ngram_size
    if config.drafts and config.draft_bias and input_ids is not None:
        codes = tokenizer.convert_tokens_to_ids([DRAFT.format(j) for j in range(1, config.drafts + 1)])
        held = (input_ids == tokenizer.convert_tokens_to_ids(DRAFT_TAG)).sum(dim=1)
        kwargs["logits_processor"] = LogitsProcessorList([DraftBias(codes, config.draft_bias, held)])
    return kwargs


def to_titles(outputs: list[list[str]], titles: list[list[str]], config: TitleConfig,
              avoid: list[set[str]] | None = None, drafts: list[list[str]] | None = None) -> list[str]:
    """Decoder outputs (candidates per session, best first) as titles: edit scripts applied to each session's
    source titles and drafts; the first candidate whose title is not in the session's ``avoid`` set is kept
    (else the best)."""
    out = []
    for i, (cands, ts) in enumerate(zip(outputs, titles)):
        ds = drafts[i] if drafts is not None else []
        texts = [decode_edit(c, ts, ds) for c in cands] if config.target_format == "edit" else cands
        banned = avoid[i] if avoid is not None else ()
        out.append(next((t for t in texts if t not in banned), texts[0]))
    return out


class TitleModule(L.LightningModule):
    """Training and validation of the title model; ``val_texts`` are decoded greedily at each validation
    for ``val_bleu``."""

    def __init__(self, model, tokenizer: PreTrainedTokenizerBase, config: TitleConfig,
                 val_texts: TitlePairs | None = None):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.val_texts = val_texts
        self._val_losses: list[torch.Tensor] = []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["input_ids"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss = self.model(**batch).loss
        self.log("val_loss", loss, prog_bar=True, batch_size=len(batch["input_ids"]))

    def on_validation_epoch_end(self) -> None:
        if not self.val_texts or self.trainer.sanity_checking:
            return
        pairs = self.val_texts
        greedy = copy.copy(self.config)
        greedy.num_beams = 1
        greedy.num_candidates = 1
        hyps = to_titles(decode(self.model, self.tokenizer, pairs.sources, greedy, progress=False), pairs.titles,
                         self.config, drafts=pairs.drafts)
        bleu = float(title_bleu(hyps, pairs.targets, pairs.locales).loc["overall", "BLEU"])
        self.log("val_bleu", bleu, prog_bar=True)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        total = max(self.config.max_steps, self.config.warmup_steps + 1)

        def schedule(step: int) -> float:  # linear warmup, then linear decay to 10% at max_steps
            if step < self.config.warmup_steps:
                return (step + 1) / self.config.warmup_steps
            return max(0.1, 1.0 - 0.9 * (step - self.config.warmup_steps) / (total - self.config.warmup_steps))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def source_batches(tokenizer: PreTrainedTokenizerBase, sources: list[str], config: TitleConfig,
                   batch_size: int | None = None, progress: bool = True):
    """(positions, input_ids, attention_mask) batches of the tokenised sources, longest first (less padding);
    callers put results back at ``positions``."""
    from tqdm.auto import tqdm

    batch_size = batch_size or config.generate_batch_size
    encoded = tokenizer(sources, truncation=True, max_length=config.max_source_length)["input_ids"]
    order = sorted(range(len(sources)), key=lambda i: -len(encoded[i]))
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="generate titles", disable=not progress or len(starts) < 2):
        idx = order[start:start + batch_size]
        lengths = torch.tensor([len(encoded[i]) for i in idx])
        input_ids = torch.full((len(idx), int(lengths.max())), tokenizer.pad_token_id, dtype=torch.long)
        for row, i in enumerate(idx):
            input_ids[row, :len(encoded[i])] = torch.tensor(encoded[i])
        attention = (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long()  # (B, S)
        yield idx, input_ids, attention


@torch.no_grad()
def decode(model, tokenizer: PreTrainedTokenizerBase, sources: list[str], config: TitleConfig,
           batch_size: int | None = None, progress: bool = True) -> list[list[str]]:
    """Generate ``config.num_candidates`` texts per source (best first), in the sources' order."""
    n = config.num_candidates
    was_training = model.training
    model.eval()
    out: list[list[str]] = [[] for _ in sources]
    device = next(model.parameters()).device
    for idx, input_ids, attention in source_batches(tokenizer, sources, config, batch_size, progress):
        kwargs = generation_kwargs(config, tokenizer, input_ids)
        generated = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                                   num_return_sequences=n, **kwargs)  # (B * n, T), each source's n together
        texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
        for row, i in enumerate(idx):
            out[i] = [" ".join(text.split()) for text in texts[row * n:(row + 1) * n]]
    model.train(was_training)
    return out


@torch.no_grad()
def decode_segments(model, tokenizer: PreTrainedTokenizerBase, sources: list[str], config: TitleConfig,
                    batch_size: int | None = None, progress: bool = True) -> list[list[tuple[str, float]]]:
    """Greedy edit scripts cut into segments with their probabilities: the head (``<tJ>``) and each
    replacement (``<r> old <w> new``), each with the probability the model gave its tokens."""
    was_training = model.training
    model.eval()
    out: list[list[tuple[str, float]]] = [[] for _ in sources]
    replace_id = tokenizer.convert_tokens_to_ids(REPLACE)
    device = next(model.parameters()).device
    for idx, input_ids, attention in source_batches(tokenizer, sources, config, batch_size, progress):
        kwargs = {**generation_kwargs(config, tokenizer, input_ids), "num_beams": 1}
        generated = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                                   output_scores=True, return_dict_in_generate=True, **kwargs)
        logprobs = model.compute_transition_scores(generated.sequences, generated.scores, normalize_logits=True)
        tokens = generated.sequences[:, 1:].tolist()  # (B, T) without the decoder start token
        for row, i in enumerate(idx):
            segments: list[tuple[list[int], float]] = [([], 0.0)]
            for token, lp in zip(tokens[row], logprobs[row].tolist()):
                if token in (tokenizer.eos_token_id, tokenizer.pad_token_id):
                    break
                if token == replace_id:
                    segments.append(([], 0.0))
                ids, total = segments[-1]
                segments[-1] = (ids + [token], total + lp)
            out[i] = [(" ".join(tokenizer.decode(ids, skip_special_tokens=True).split()), float(math.exp(total)))
                      for ids, total in segments]
    model.train(was_training)
    return out


def gated_script(segments: list[tuple[str, float]], gate: float,
                 survival: Callable[[list[str]], float] | None = None) -> str:
    """The edit script keeping the segments the model is sure enough of: a title or draft other than ``<t1>`` when
    its probability is at least ``gate`` (else title 1, unedited), a replacement when its probability is at
    least ``gate`` times ``survival(old words)`` (1 when None): the chance that keeping them is right."""
    head, head_prob = segments[0] if segments else ("", 0.0)
    if not head.startswith(("<t", "<d")) or (head != TITLE.format(1) and head_prob < gate):
        return TITLE.format(1)
    kept = []
    for text, prob in segments[1:]:
        old = split_words(text.replace(REPLACE, " ").split(WITH)[0])
        if prob >= gate * (survival(old) if survival is not None else 1.0):
            kept.append(text)
    return " ".join([head, *kept])
