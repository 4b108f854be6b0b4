"""The catalog tokenizer shared by the Recformer encoder and the mT5 title generator.

One SentencePiece **unigram** model is trained on product text of all six locales and wrapped as a
transformers fast tokenizer (``tokenizers`` backend), so both models take the same ids and every
transformers API works on it: ``save_pretrained``, ``AutoTokenizer.from_pretrained(dir,
local_files_only=True)``, ``__call__`` with padding/truncation/``return_tensors``, ``decode``,
``batch_decode``, ``convert_tokens_to_ids``, offsets and ``word_ids()``.

Why unigram rather than BPE: it is the algorithm of the T5/mT5 tokenizers, so the ``tokenizers``
``Unigram`` model reproduces SentencePiece's segmentation id for id (checked in the tests); its
Viterbi segmentation suits Japanese, which has no spaces, better than greedy merges; and
SentencePiece can treat its vocab size as a soft limit (``hard_vocab_limit=False``) when a corpus
is too small for the size asked for.

Special tokens, with fixed ids (T5's layout first, so an mT5 config's defaults fit):

- ``<pad>`` = 0: padding, and the T5 ``decoder_start_token_id``;
- ``</s>`` = 1: eos, appended by ``__call__``;
- ``<unk>`` = 2: never produced for text, byte fallback covers every character;
- ``<s>`` = 3: both cls and bos, the encoder's first token (Recformer's CLS);
- ``<sep>`` = 4: separator the encoder may put between items or attributes;
- ``<mask>`` = 5: masked-language-model target.

Read them as ``tokenizer.pad_token_id``, ``eos_token_id``, ``unk_token_id``, ``cls_token_id``
(== ``bos_token_id``), ``sep_token_id`` and ``mask_token_id``; :func:`special_token_ids` does so
and fails early, naming what is missing, for a user-supplied tokenizer that lacks one. Size an
embedding with ``len(tokenizer)`` (counts added tokens; equals ``tokenizer.vocab_size`` here).

``tokenizer(text)`` gives ``pieces + [</s>]`` (T5 convention, so ``text_target=`` labels end with
eos); pairs give ``a </s> b </s>``. The encoder, which lays out items itself, should call with
``add_special_tokens=False`` and add ``cls``/``sep`` where it wants them. Text is NFKC-normalised
(full-width ``ＵＳＢ`` -> ``USB``, half-width katakana -> full-width), whitespace runs collapse to
one space, and case is kept; so ``decode`` returns the normalised text.
"""

from __future__ import annotations

import io
import logging
import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import sentencepiece as spm
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

PAD_TOKEN = "<pad>"
EOS_TOKEN = "</s>"
UNK_TOKEN = "<unk>"
BOS_TOKEN = "<s>"
"""Begin-of-sequence token; also the CLS token."""
SEP_TOKEN = "<sep>"
MASK_TOKEN = "<mask>"

WORD_BOUNDARY = "\u2581"
"""SentencePiece's word-boundary marker; the first piece of every whitespace-separated word starts with it."""

SPM_MODEL_FILE = "spiece.model"
"""Raw SentencePiece model kept next to ``tokenizer.json`` (which is what transformers loads)."""

TOKENIZER_FILES: tuple[str, ...] = (
    "tokenizer.json",
    "tokenizer_config.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "tekken.json",
)
"""Files any one of which marks a folder as holding a Hugging Face tokenizer."""

CHARACTER_COVERAGE = 0.9995
"""Share of characters that get their own piece; high enough for Japanese kanji, the rest go to bytes."""

MAX_SENTENCE_CHARS = 4096
"""Longer lines are cut at a word boundary: SentencePiece would otherwise drop them silently."""

_NUM_SPECIAL = 6
_NUM_BYTE_PIECES = 256
_WORD_PATTERN = re.compile(r"\S+")


def train_tokenizer(
    texts: Iterable[str],
    out_dir: str | Path,
    vocab_size: int = 16000,
    *,
    max_sentences: int = 2_000_000,
    seed: int = 0,
    num_threads: int = 8,
) -> PreTrainedTokenizerBase:
    """Train the catalog tokenizer on ``texts``, save it to ``out_dir`` and return it as loaded from there.

    Each text is one training line (newlines inside it count as spaces); non-strings such as the
    NaN of a missing description are skipped. When there are more than ``max_sentences`` lines, a
    reservoir sample of that many, drawn with ``seed``, keeps memory and time bounded for the 1.4M
    product catalog. Training is deterministic for the same texts, ``seed`` and ``num_threads``
    (the thread count changes float sums, so it is fixed rather than taken from the machine).
    ``vocab_size`` is a soft limit: a corpus too small for it yields fewer pieces, with a warning.

    ``out_dir`` receives ``tokenizer.json`` and ``tokenizer_config.json`` (what
    :func:`load_tokenizer` and ``AutoTokenizer`` read) and the raw ``spiece.model``.

    Raises ``ValueError`` when no text is usable, or when ``vocab_size`` cannot hold the special
    tokens, the 256 byte pieces and the corpus's required characters.
    """
    min_vocab = _NUM_SPECIAL + _NUM_BYTE_PIECES + 1
    if vocab_size < min_vocab:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: {_NUM_SPECIAL} special tokens and {_NUM_BYTE_PIECES} "
            f"byte pieces alone need {min_vocab - 1}"
        )
    if max_sentences < 1:
        raise ValueError(f"max_sentences must be at least 1, got {max_sentences}")
    out = Path(out_dir)
    sentences = _sample_sentences(texts, max_sentences, seed)
    if not sentences:
        raise ValueError(f"no non-empty text to train the tokenizer for {out} on")

    model_proto = _train_sentencepiece(sentences, vocab_size, seed=seed, num_threads=num_threads)
    tokenizer = _fast_tokenizer_from_spm(model_proto)
    if len(tokenizer) < vocab_size:
        logger.warning(
            "Corpus of %d lines is too small for vocab_size=%d: the tokenizer has %d pieces",
            len(sentences), vocab_size, len(tokenizer),
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / SPM_MODEL_FILE).write_bytes(model_proto)
    tokenizer.save_pretrained(str(out))
    logger.info("Trained a %d-piece tokenizer on %d lines into %s", len(tokenizer), len(sentences), out)
    return load_tokenizer(out)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """Load a folder written by :func:`train_tokenizer`, or any local Hugging Face tokenizer folder.

    Never downloads (``local_files_only=True``), so a typo fails here instead of reaching for the
    Hub. Raises ``FileNotFoundError`` naming ``path`` when it is not a folder or holds none of
    :data:`TOKENIZER_FILES`, and ``ValueError`` naming it when transformers cannot build a
    tokenizer from the files there.
    """
    folder = Path(path)
    if not folder.is_dir():
        what = "is a file, not a tokenizer folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"{folder}: {what}")
    present = [name for name in TOKENIZER_FILES if (folder / name).is_file()]
    if not present:
        raise FileNotFoundError(
            f"{folder}: no tokenizer files in this folder (expected one of {', '.join(TOKENIZER_FILES)}); "
            "train one with train_tokenizer() or save one with tokenizer.save_pretrained()"
        )
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{folder}: cannot load a tokenizer from {', '.join(present)}: {exc}") from exc


def special_token_ids(
    tokenizer: PreTrainedTokenizerBase,
    names: Iterable[str] = ("pad", "unk", "cls", "eos", "sep", "mask"),
) -> dict[str, int]:
    """Ids of the named special tokens (``"pad"`` reads ``pad_token_id``), for model setup.

    Raises ``ValueError`` listing every missing one, so a model built on a user's own tokenizer
    (say an mT5 one, which has no mask or cls) fails at setup rather than mid-training.
    """
    ids: dict[str, int] = {}
    missing: list[str] = []
    for name in names:
        token_id = getattr(tokenizer, f"{name}_token_id", None)
        if token_id is None:
            missing.append(name)
        else:
            ids[name] = int(token_id)
    if missing:
        where = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise ValueError(f"{where}: tokenizer has no {', '.join(f'{n}_token' for n in missing)}")
    return ids


def encode_words(tokenizer: PreTrainedTokenizerBase, text: str) -> list[list[int]]:
    """Token ids of ``text`` grouped by word, for whole-word masking; no special tokens.

    A word is a whitespace-separated chunk of ``text``, so Japanese without spaces stays one word,
    exactly the run of pieces from one that starts with :data:`WORD_BOUNDARY` to the next. Groups
    come from the fast tokenizer's character offsets rather than ``word_ids()``: on this
    project's tokenizer they agree, but a byte-level BPE one (Longformer's) splits ``Type-C`` into
    three "words" there. Each token joins the chunk where it starts (a token of bare whitespace
    joins the next chunk); chunks that yield no token are left out. Concatenating the groups gives
    ``tokenizer(text, add_special_tokens=False)["input_ids"]`` for a fast tokenizer; a slow one
    encodes each chunk on its own.
    """
    spans = [match.span() for match in _WORD_PATTERN.finditer(text)]
    if not spans:
        return []
    if not tokenizer.is_fast:
        chunks = (tokenizer.encode(text[start:end], add_special_tokens=False) for start, end in spans)
        return [ids for ids in chunks if ids]

    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    groups: list[list[int]] = []
    current_word = -1
    word = 0
    for token_id, (start, _end) in zip(encoding["input_ids"], encoding["offset_mapping"]):
        # Offsets only grow along the tokens; move to the chunk that ends after this token's start.
        while word < len(spans) - 1 and spans[word][1] <= start:
            word += 1
        if word != current_word:
            groups.append([])
            current_word = word
        groups[-1].append(int(token_id))
    return groups


def _clean_lines(texts: Iterable[str]) -> Iterator[str]:
    """Collapse whitespace as the tokenizer's pre-tokenizer does, cut overlong lines, skip empties."""
    skipped = 0
    for text in texts:
        if not isinstance(text, str):
            skipped += 1
            continue
        line = " ".join(text.split())
        if len(line) > MAX_SENTENCE_CHARS:
            cut = line[:MAX_SENTENCE_CHARS]
            line = cut.rsplit(" ", 1)[0] if " " in cut else cut
        if line:
            yield line
    if skipped:
        logger.warning("Skipped %d non-string texts (e.g. missing values) when training the tokenizer", skipped)


def _sample_sentences(texts: Iterable[str], max_sentences: int, seed: int) -> list[str]:
    """Keep every line, or a seeded reservoir sample of ``max_sentences`` in one pass over a stream."""
    rng = random.Random(seed)
    sample: list[str] = []
    seen = 0
    for line in _clean_lines(texts):
        seen += 1
        if len(sample) < max_sentences:
            sample.append(line)
        else:
            slot = rng.randrange(seen)
            if slot < max_sentences:
                sample[slot] = line
    if seen > max_sentences:
        logger.info("Sampled %d of %d lines to train the tokenizer (seed %d)", max_sentences, seen, seed)
    return sample


def _train_sentencepiece(sentences: list[str], vocab_size: int, *, seed: int, num_threads: int) -> bytes:
    """Run the SentencePiece unigram trainer in memory and return the serialized model."""
    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            model_type="unigram",
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            character_coverage=CHARACTER_COVERAGE,
            byte_fallback=True,
            normalization_rule_name="nfkc",
            max_sentence_length=4 * MAX_SENTENCE_CHARS + 16,
            shuffle_input_sentence=False,
            num_threads=num_threads,
            pad_id=0,
            pad_piece=PAD_TOKEN,
            eos_id=1,
            eos_piece=EOS_TOKEN,
            unk_id=2,
            unk_piece=UNK_TOKEN,
            bos_id=3,
            bos_piece=BOS_TOKEN,
            control_symbols=[SEP_TOKEN, MASK_TOKEN],
            minloglevel=1,
        )
    except RuntimeError as exc:
        raise ValueError(f"SentencePiece training with vocab_size={vocab_size} failed: {exc}") from exc
    return model.getvalue()


def _fast_tokenizer_from_spm(model_proto: bytes) -> PreTrainedTokenizerFast:
    """Wrap a unigram model from :func:`_train_sentencepiece` as a transformers fast tokenizer.

    Built by hand because transformers' own SentencePiece converters need ``protobuf`` and either
    drop byte fallback (``T5Tokenizer``) or skip whitespace pre-tokenization, which ``word_ids()``
    and SentencePiece's per-word segmentation rely on.
    """
    sp = spm.SentencePieceProcessor(model_proto=model_proto)
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    backend = Tokenizer(Unigram(vocab, unk_id=sp.unk_id(), byte_fallback=True))
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement=WORD_BOUNDARY, prepend_scheme="always", split=True),
        ]
    )
    backend.decoder = decoders.Sequence(
        [
            decoders.Replace(WORD_BOUNDARY, " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(content=" ", left=1, right=0),
        ]
    )
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A:0 {EOS_TOKEN}:0",
        pair=f"$A:0 {EOS_TOKEN}:0 $B:1 {EOS_TOKEN}:1",
        special_tokens=[(EOS_TOKEN, sp.eos_id())],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        bos_token=BOS_TOKEN,
        cls_token=BOS_TOKEN,
        sep_token=SEP_TOKEN,
        mask_token=MASK_TOKEN,
        clean_up_tokenization_spaces=False,
        padding_side="right",
        truncation_side="right",
    )
