"""FAISS item retrieval: inner-product search over item embeddings, per locale, session items excluded.

Exact search uses a flat index; approximate search uses HNSW (CPU) or IVF (CPU or GPU). One code path
serves both machines: :func:`choose_placement` (a pure function of the config, of whether faiss was built
with GPU support and of how many GPUs it sees) puts flat and IVF indexes on the GPU when faiss-gpu sees
one, split across several GPUs (``IndexShards``, the default: each GPU holds a slice of the items) or
copied to each (``IndexReplicas``: each GPU answers a share of the queries), and searches in large
batches there; otherwise on the CPU. Where a GPU is visible to torch but faiss has no GPU build (the
faiss-gpu wheels target CUDA 12; a CUDA 13 machine has none), exact search runs as a chunked matrix
product and ``torch.topk`` on that GPU instead (``backend="torch"``). Embeddings are expected
L2-normalised, so inner product is cosine similarity.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faiss
import numpy as np
import torch

from .constants import TOP_K

logger = logging.getLogger(__name__)

KINDS = ("flat", "hnsw", "ivf")
MULTI_GPU = ("shards", "replicas")
BACKENDS = ("faiss", "torch")
GPU_MAX_K = 2048
"""faiss-gpu's largest k per search (flat and IVF)."""


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
    max_gpus: int | None = None
    """Use at most this many of the visible GPUs (None: all)."""
    multi_gpu: str = "shards"
    """Several GPUs: ``shards`` (items split across GPUs; memory scales) or ``replicas`` (every GPU holds
    every item and searches a share of the queries; throughput scales)."""
    cpu_search_batch: int = 8192
    """Queries per faiss call on the CPU (bounds the (queries, k + excluded) result arrays)."""
    gpu_search_batch: int = 65536
    """Queries per faiss call on GPUs: large batches keep them busy."""
    backend: str | None = None
    """None: faiss, or exact search in torch on a GPU that faiss cannot use (flat only). ``torch``: always
    the torch flat search (on the CPU when torch sees no GPU); ``faiss``: never torch."""
    torch_score_bytes: int = 1 << 30
    """torch backend: the most bytes of one (queries, items) fp32 score block, which sets its batch."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"index kind {self.kind!r} is not one of {KINDS}")
        if self.multi_gpu not in MULTI_GPU:
            raise ValueError(f"multi_gpu {self.multi_gpu!r} is not one of {MULTI_GPU}")
        if min(self.cpu_search_batch, self.gpu_search_batch) < 1:
            raise ValueError("search batches must hold at least one query")
        if self.backend is not None and self.backend not in BACKENDS:
            raise ValueError(f"index backend {self.backend!r} is not one of {BACKENDS}")
        if self.backend == "torch" and self.kind != "flat":
            raise ValueError(f"the torch backend searches exactly (kind 'flat'), not {self.kind!r}")


@dataclass(frozen=True)
class Placement:
    """Where an index lives and how it is searched."""

    gpus: int
    """0: the CPU; else the number of GPUs the index spans."""
    multi: str
    """``single`` (CPU or one GPU), ``shards`` or ``replicas``."""
    search_batch: int
    backend: str = "faiss"
    """``faiss`` indexes, or ``torch``: exact search as a matrix product and ``torch.topk``."""


def faiss_gpus() -> tuple[bool, int]:
    """(faiss was built with GPU support, number of GPUs it sees)."""
    has_gpu = hasattr(faiss, "StandardGpuResources") and hasattr(faiss, "get_num_gpus")
    return has_gpu, (int(faiss.get_num_gpus()) if has_gpu else 0)


def torch_gpus() -> int:
    """Number of CUDA devices torch sees."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def choose_placement(config: IndexConfig, faiss_has_gpu: bool, num_gpus: int, torch_gpu_count: int = 0
                     ) -> Placement:
    """The one decision between CPU and GPU retrieval, from what is installed and visible.

    HNSW has no GPU version and stays on the CPU; ``use_gpu=True`` without any GPU search is an error
    rather than a silent CPU run; ``use_gpu=None`` takes the GPUs when there are any. faiss-gpu comes
    first; a flat index whose GPU faiss cannot use (``torch_gpu_count`` > 0, faiss-cpu) is searched by
    torch on one GPU, which is still exact.
    """
    available = num_gpus if faiss_has_gpu else 0
    torch_gpu = 1 if torch_gpu_count > 0 and config.use_gpu is not False else 0
    if config.backend == "torch":
        return Placement(torch_gpu, "single", config.gpu_search_batch if torch_gpu else config.cpu_search_batch,
                         "torch")
    if config.kind == "hnsw" or config.use_gpu is False:
        return Placement(0, "single", config.cpu_search_batch)
    if available == 0 and torch_gpu and config.kind == "flat" and config.backend is None:
        return Placement(1, "single", config.gpu_search_batch, "torch")
    if config.use_gpu and available == 0:
        raise RuntimeError("use_gpu=True but faiss has no GPU support or sees no GPU, and torch search on a "
                           "GPU is exact only (kind 'flat'); pip install -e .[gpu] installs faiss-gpu")
    if available == 0:
        return Placement(0, "single", config.cpu_search_batch)
    gpus = min(available, config.max_gpus) if config.max_gpus else available
    return Placement(gpus, "single" if gpus == 1 else config.multi_gpu, config.gpu_search_batch)


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


class TorchFlatIndex:
    """Exact inner-product search in torch (the faiss ``Index`` calls ItemIndex makes: ``ntotal``,
    ``search``), on a GPU that faiss cannot use or on the CPU. Queries go in blocks whose (block, items)
    score matrix stays under ``score_bytes``; each block keeps its top k by ``torch.topk``."""

    def __init__(self, vectors: np.ndarray, device: torch.device, score_bytes: int):
        self.device = device
        self.vectors = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).to(device)  # (N, D)
        self.ntotal = len(vectors)
        self.block = max(1, score_bytes // (4 * max(self.ntotal, 1)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``(n, k)`` and positions ``(n, k)``, best first (k at most ``ntotal``)."""
        k = min(k, self.ntotal)
        scores, positions = [], []
        for lo in range(0, len(queries), self.block):
            q = torch.from_numpy(np.ascontiguousarray(queries[lo:lo + self.block])).to(self.device)
            top = torch.topk(q @ self.vectors.T, k, dim=1)  # (b, D) x (D, N) -> (b, N) -> (b, k)
            scores.append(top.values.cpu().numpy())
            positions.append(top.indices.cpu().numpy())
        if not scores:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return np.concatenate(scores), np.concatenate(positions).astype(np.int64)


class ItemIndex:
    """Top-k items of the session's locale for session embeddings, never an item of the session."""

    def __init__(self, config: IndexConfig | None = None):
        self.config = config or IndexConfig()
        self.placement = choose_placement(self.config, *faiss_gpus(), torch_gpus())
        self._indexes: dict[int, faiss.Index | TorchFlatIndex] = {}
        self._codes: dict[int, np.ndarray] = {}
        self._resources: dict = {}  # GPU number -> faiss.StandardGpuResources
        self._keep: list = []  # sub-indexes a sharded/replicated faiss index does not own
        self.with_bias = False

    def _new_index(self, dim: int, n: int) -> faiss.Index:
        """An empty CPU index of the configured kind (IVF untrained)."""
        cfg = self.config
        if cfg.kind == "flat":
            return faiss.IndexFlatIP(dim)
        if cfg.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = cfg.hnsw_ef_construction
            index.hnsw.efSearch = cfg.hnsw_ef_search
            return index
        lists = cfg.ivf_lists or max(1, min(n // 39, int(4 * np.sqrt(n))))  # faiss wants >= 39 points per cell
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = min(cfg.ivf_probe, lists)
        return index

    def _to_gpu(self, index: faiss.Index, device: int) -> faiss.Index:
        if device not in self._resources:  # one per GPU: each reserves scratch memory
            self._resources[device] = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(self._resources[device], device, index)

    def _filled(self, vectors: np.ndarray) -> faiss.Index:
        """An index over ``vectors`` where the placement says: the CPU, one GPU, or shards/replicas over GPUs.
        An IVF index is trained once (on the first GPU when there is one) and that quantizer is shared."""
        place = self.placement
        if place.backend == "torch":
            device = torch.device("cuda", 0) if place.gpus else torch.device("cpu")
            return TorchFlatIndex(vectors, device, self.config.torch_score_bytes)
        index = self._new_index(vectors.shape[1], len(vectors))
        if place.gpus == 0:
            if not index.is_trained:
                index.train(vectors)
            index.add(vectors)
            return index
        first = self._to_gpu(index, 0)
        if not first.is_trained:
            first.train(vectors)
        if place.gpus == 1:
            first.add(vectors)
            return first
        trained = faiss.index_gpu_to_cpu(first)  # empty, trained: the template of every GPU's part
        if place.multi == "replicas":
            multi = faiss.IndexReplicas(vectors.shape[1], True)
            parts = [(g, vectors) for g in range(place.gpus)]
        else:
            multi = faiss.IndexShards(vectors.shape[1], True, True)  # successive_ids: shard g's ids follow g-1's
            parts = list(enumerate(np.array_split(vectors, place.gpus)))
        for g, part in parts:
            sub = self._to_gpu(trained, g)
            sub.add(np.ascontiguousarray(part))
            self._keep.append(sub)
            if place.multi == "replicas":
                multi.add_replica(sub)
            else:
                multi.add_shard(sub)
        return multi

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
            self._indexes[int(loc)] = self._filled(embeddings[rows])
            self._codes[int(loc)] = np.asarray(codes[rows], dtype=np.int64)
        place = self.placement
        where = ("CPU" if place.gpus == 0 else f"{place.gpus} GPU(s), {place.multi}") + f", {place.backend}"
        logger.info("%s index over %d items in %d locale(s) on %s", self.config.kind, len(embeddings),
                    len(self._indexes), where)
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
            if self.placement.gpus and self.placement.backend == "faiss" and fetch > GPU_MAX_K:
                logger.warning("%d neighbours asked of faiss-gpu, which returns at most %d", fetch, GPU_MAX_K)
                fetch = GPU_MAX_K
            batch = self.placement.search_batch
            found = [index.search(queries[members[lo:lo + batch]], fetch) for lo in range(0, len(members), batch)]
            scores = np.concatenate([f[0] for f in found]) if found else np.zeros((0, fetch), np.float32)
            positions = np.concatenate([f[1] for f in found]) if found else np.zeros((0, fetch), np.int64)
            # scores, positions: (m, fetch), best first
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
