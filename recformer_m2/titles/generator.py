"""``TitleGenerator``: a trained title model behind the ``fit(catalog, train)`` / ``generate(sessions)``
contract of ``LastTitle``, saved and loaded as one folder (model, tokenizer, ``title_config.json``).

    gen = TitleGenerator.from_pretrained("runs/titles").fit(data.catalog, data.train)
    titles = gen.generate(data.test(3))      # one title per session
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from pathlib import Path

from transformers import MT5ForConditionalGeneration, PreTrainedTokenizerBase

from ..config import save_config
from ..constants import LOCALES
from ..data import Catalog, Sessions
from ..tokenizer import load_tokenizer
from .config import TitleConfig
from .heuristics import WordSurvival
from .grid import GridTitle
from .inputs import SiblingTitles, TitlePairs, session_inputs, source_drafts, source_locale, source_titles
from .model import check_loading, cpu_settings, decode, decode_segments, gated_script, plain_model, to_titles

logger = logging.getLogger(__name__)

CONFIG_FILE = "title_config.json"
SURVIVAL_FILE = "word_survival.json"


class TitleGenerator:
    """Next-product titles from the titles of a session's last products (Amazon-M2 task 3)."""

    name = "mt5"

    def __init__(self, model: MT5ForConditionalGeneration, tokenizer: PreTrainedTokenizerBase, config: TitleConfig,
                 survival: WordSurvival | None = None):
        self.model = plain_model(model).eval()
        self.survival = survival
        """Word survival counts of the training sessions, weighing the edit gate (``config.edit_gate``)."""
        self.tokenizer = tokenizer
        self.config = config
        self.catalog: Catalog | None = None
        self._known: dict[str, set[str]] | None = None
        self._siblings: SiblingTitles | None = None
        self._grid: GridTitle | None = None

    def fit(self, catalog: Catalog, train: Sessions | None = None) -> "TitleGenerator":
        """Attach the catalog the sessions' products are looked up in; the model is already trained
        (see :func:`recformer_m2.titles.train_titles`), so ``train`` is not used."""
        self.catalog = catalog
        self._known = None
        self._siblings = None
        self._grid = None
        return self

    def catalog_titles(self, locale: str) -> set[str]:
        """The catalog's titles in ``locale`` (spaces normalised): what a new product's title is not."""
        if self._known is None:
            table = self.catalog.table
            self._known = {}
            for title, loc in zip(table["title"].tolist(), table["locale"].tolist()):
                self._known.setdefault(str(loc), set()).add(" ".join(str(title).split()))
        return self._known.get(locale, set())

    def inputs(self, sessions: Sessions) -> TitlePairs:
        """Source texts with the titles (most recent first) and drafts they hold, for every session."""
        if self.catalog is None:
            raise RuntimeError("TitleGenerator.generate needs a catalog: call .fit(catalog, train) first")
        self._build_lookups()
        return session_inputs(self.catalog, sessions, self.config.k, self.config.attributes, self.config.dedupe,
                              self._siblings, self.config.siblings, grid=self._grid, n_drafts=self.config.drafts)

    def _build_lookups(self) -> None:
        """The catalog indexes the sources need (siblings, drafts), built once per catalog."""
        if self.config.siblings and self._siblings is None:
            self._siblings = SiblingTitles(self.catalog)
        if self.config.drafts and self._grid is None:
            self._grid = GridTitle().fit(self.catalog)

    def generate(self, sessions: Sessions, batch_size: int | None = None, progress: bool = True) -> list[str]:
        """One generated title per session, in the sessions' order."""
        pairs = self.inputs(sessions)
        return self.generate_texts(pairs.sources, pairs.titles, pairs.drafts, batch_size=batch_size,
                                   progress=progress)

    def generate_texts(self, sources: list[str], titles: list[list[str]] | None = None,
                       drafts: list[list[str]] | None = None, batch_size: int | None = None,
                       progress: bool = True) -> list[str]:
        """One generated title per source text (``<LOC> title <sep> title ... <draft> draft ...``); ``titles``
        and ``drafts`` are what edit scripts refer to (default: read back from the sources)."""
        if titles is None:
            titles = [source_titles(s) for s in sources]
        if drafts is None:
            drafts = [source_drafts(s) for s in sources]
        gate = self.config.edit_gate if self.config.target_format == "edit" else None
        with cpu_settings(self.config):
            if gate:  # greedy, each replacement kept only when the model is sure enough of it
                segments = decode_segments(self.model, self.tokenizer, sources, self.config, batch_size, progress)
                outputs = [[gated_script(segs, gate, self.survival_of(source_locale(src)))]
                           for segs, src in zip(segments, sources)]
            else:
                outputs = decode(self.model, self.tokenizer, sources, self.config, batch_size, progress)
        avoid = None
        if self.config.avoid_catalog_titles and self.catalog is not None:
            avoid = [self.catalog_titles(source_locale(s)) for s in sources]
        return to_titles(outputs, titles, self.config, avoid, drafts)

    def survival_of(self, locale: str):
        """``words -> chance they survive into the next title`` in ``locale`` (None without survival counts)."""
        if self.survival is None or locale not in LOCALES:
            return None
        code = LOCALES.index(locale)
        return lambda words: self.survival.words_rate(code, words)

    def with_k(self, k: int) -> "TitleGenerator":
        """This generator reading the last ``k`` products (same weights), e.g. for the K ablation."""
        if self.catalog is not None:  # built before copying, so that every K shares them
            self._build_lookups()
        twin = copy.copy(self)
        twin.config = dataclasses.replace(self.config, k=k)
        return twin

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write model weights, tokenizer and ``title_config.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        save_config(self.config, folder / CONFIG_FILE)
        if self.survival is not None:
            (folder / SURVIVAL_FILE).write_text(json.dumps(self.survival.to_dict()), encoding="utf-8")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, **overrides) -> "TitleGenerator":
        """Load a folder written by :meth:`save_pretrained`; ``overrides`` replace generation settings
        (e.g. ``num_beams=4``). Raises naming any weight the folder misses or does not expect."""
        folder = Path(folder)
        path = folder / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{folder}: no {CONFIG_FILE}; is this a folder written by train_titles?")
        values = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(TitleConfig)}
        unknown = sorted(set(values) - known) + sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"{folder}: unknown TitleConfig field(s) {unknown}")
        config = TitleConfig(**{**values, **overrides})
        model, info = MT5ForConditionalGeneration.from_pretrained(str(folder), local_files_only=True,
                                                                  output_loading_info=True)
        check_loading(folder, info, model.config.tie_word_embeddings)
        survival = None
        if (folder / SURVIVAL_FILE).is_file():
            survival = WordSurvival.from_dict(json.loads((folder / SURVIVAL_FILE).read_text(encoding="utf-8")))
        return cls(model, load_tokenizer(folder), config, survival)
