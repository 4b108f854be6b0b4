"""FAISS item retrieval: inner-product search over item embeddings, per locale, session items excluded.

Exact search uses a flat index; approximate search uses HNSW (CPU) or IVF (CPU or GPU). On a machine
with faiss-gpu and a CUDA device, flat and IVF indexes move to the GPU. Embeddings are expected
L2-normalised, so inner product is cosine similarity.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faiss
import numpy as np

from .constants import TOP_K

logger = logging.getLogger(__name__)

KINDS = ("flat", "hnsw", "ivf")


@dataclass
class IndexConfig:
    """How items are indexed. ``kind``: flat (exact), hnsw or ivf (approximate)."""

    kind: str = "flat"
    hnsw_m: int = 32
    """HNSW graph degree: more links, better recall, more memory."""
    hnsw_ef_search: int = 256
    """HNSW search breadth: must exceed k; larger is slower and more accurate."""
    hnsw_ef_construction: int = 80
    ivf_lists: int | None = None
    """IVF cells; None picks about 4 * sqrt(N)."""
    ivf_probe: int = 32
    """IVF cells visited per query."""
    use_gpu: bool | None = None
    """None: the GPU when faiss-gpu sees one. HNSW always stays on the CPU."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"index kind {self.kind!r} is not one of {KINDS}")


def lookup_rows(codes: np.ndarray, locales: np.ndarray, query_codes: np.ndarray, query_locales: np.ndarray
                ) -> np.ndarray:
    """Row of each (query code, query locale) among the rows (``codes``, ``locales``); -1 where absent."""
    keys = np.asarray(codes, np.int64) * 256 + np.asarray(locales, np.int64)
    wanted = np.asarray(query_codes, np.int64) * 256 + np.asarray(query_locales, np.int64)
    out = np.full(len(wanted), -1, dtype=np.int64)
    if len(keys) == 0:
        return out
    order = np.argsort(keys, kind="stable")
    at = np.minimum(np.searchsorted(keys[order], wanted), len(keys) - 1)
    hit = (keys[order][at] == wanted) & (np.asarray(query_codes) >= 0)
    out[hit] = order[at[hit]]
    return out


def retrieval_queries(sessions: np.ndarray, weight: float, table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Unit session vectors plus ``weight`` times the table row ``rows[i]`` of each one's newest item (none
    where -1), normalised: the queries retrieval searches with (``RecformerConfig.table_item_weight``)."""
    if weight:
        sessions = sessions.copy()
        found = rows >= 0
        sessions[found] += weight * np.asarray(table[rows[found]], dtype=np.float32)
    return sessions / np.maximum(np.linalg.norm(sessions, axis=1, keepdims=True), 1e-12)


def _gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class ItemIndex:
    """Top-k items of the session's locale for session embeddings, never an item of the session."""

    def __init__(self, config: IndexConfig | None = None):
        self.config = config or IndexConfig()
        self._indexes: dict[int, faiss.Index] = {}
        self._codes: dict[int, np.ndarray] = {}
        self.with_bias = False

    def _new_index(self, dim: int, n: int) -> faiss.Index:
        cfg = self.config
        if cfg.kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif cfg.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = cfg.hnsw_ef_construction
            index.hnsw.efSearch = cfg.hnsw_ef_search
        else:
            lists = cfg.ivf_lists or max(1, min(n // 39, int(4 * np.sqrt(n))))  # faiss wants >= 39 points per cell
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
            index.nprobe = min(cfg.ivf_probe, lists)
        use_gpu = _gpu_available() if cfg.use_gpu is None else cfg.use_gpu
        if use_gpu and cfg.kind != "hnsw":
            if not _gpu_available():
                raise RuntimeError("use_gpu=True but faiss has no GPU support or sees no GPU")
            self._gpu = getattr(self, "_gpu", None) or faiss.StandardGpuResources()
            index = faiss.index_cpu_to_gpu(self._gpu, 0, index)
        return index

    def build(self, embeddings: np.ndarray, codes: np.ndarray, locales: np.ndarray,
              bias: np.ndarray | None = None) -> "ItemIndex":
        """Index item embeddings ``(N, D)``; row i is item ``codes[i]`` as sold in locale ``locales[i]``.

        ``bias``: ``(N,)`` added to every query's score of each item (a finetuned popularity prior). It is
        stored as one more dimension (items ``[e, bias]``, queries ``[q, 1]``), so exact and approximate
        inner-product search rank by ``q . e + bias`` alike.
        """
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if not (len(embeddings) == len(codes) == len(locales)):
            raise ValueError(f"{len(embeddings)} embeddings, {len(codes)} codes, {len(locales)} locales: must match")
        self.with_bias = bias is not None
        if bias is not None:
            if np.shape(bias) != (len(embeddings),):
                raise ValueError(f"bias must have shape ({len(embeddings)},), got {np.shape(bias)}")
            embeddings = np.ascontiguousarray(np.hstack([embeddings, np.asarray(bias, np.float32)[:, None]]))
        for loc in np.unique(locales):
            rows = np.flatnonzero(locales == loc)
            index = self._new_index(embeddings.shape[1], len(rows))
            if not index.is_trained:
                index.train(embeddings[rows])
            index.add(embeddings[rows])
            self._indexes[int(loc)] = index
            self._codes[int(loc)] = np.asarray(codes[rows], dtype=np.int64)
        logger.info("%s index over %d items in %d locale(s)", self.config.kind, len(embeddings), len(self._indexes))
        return self

    def search(
        self, queries: np.ndarray, locales: np.ndarray, k: int = TOP_K, exclude: list[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Codes ``(n, k)`` (-1 padded) and scores ``(n, k)`` (-inf padded) for session embeddings ``(n, D)``.

        ``exclude[i]``: codes never returned for query i (the session's items); the search asks for
        ``k + len(exclude[i])`` neighbours so that k remain after removing them.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.with_bias:
            queries = np.ascontiguousarray(np.hstack([queries, np.ones((len(queries), 1), np.float32)]))
        exclude = exclude if exclude is not None else [np.zeros(0, np.int64)] * len(queries)
        out_codes = np.full((len(queries), k), -1, dtype=np.int32)
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for loc in np.unique(locales):
            members = np.flatnonzero(locales == loc)
            if int(loc) not in self._indexes:
                raise KeyError(f"no items indexed for locale index {int(loc)}")
            index, codes = self._indexes[int(loc)], self._codes[int(loc)]
            extra = max((len(exclude[i]) for i in members), default=0)
            fetch = min(k + extra, index.ntotal)
            scores, positions = index.search(queries[members], fetch)  # (m, fetch), best first
            cand = np.where(positions >= 0, codes[np.maximum(positions, 0)], -1)  # (m, fetch)
            n_ex = np.array([len(exclude[i]) for i in members])
            if n_ex.sum():
                ex_rows = np.repeat(np.arange(len(members)), n_ex)
                ex_codes = np.concatenate([np.asarray(exclude[i], dtype=np.int64) for i in members])
                span = int(max(codes.max(initial=0), ex_codes.max(initial=0))) + 2
                keys = np.arange(len(members))[:, None] * span + cand
                dropped = np.isin(keys, ex_rows * span + ex_codes) | (positions < 0)
            else:
                dropped = positions < 0
            # Kept candidates first, each group in faiss' best-first order; then cut to k.
            order = np.argsort(dropped, axis=1, kind="stable")[:, :k]
            keep = ~np.take_along_axis(dropped, order, axis=1)
            width = order.shape[1]
            out_codes[members, :width] = np.where(keep, np.take_along_axis(cand, order, axis=1), -1)
            out_scores[members, :width] = np.where(keep, np.take_along_axis(scores, order, axis=1), -np.inf)
        return out_codes, out_scores
