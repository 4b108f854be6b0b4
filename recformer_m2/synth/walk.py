"""Sessions: a vectorised random walk over a locale's catalogue, all sessions of the locale at once.

Each step takes one of several moves (another variant of the line, another line of the kind, a related
kind, a popular product, a product of the shopper's own taste, the last product again, an earlier one
again), with the style's probabilities; the walk runs over positions, so the real data's size
(``scale="full"``) takes minutes, not hours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalogue import Catalog, Kinds
from .config import SynthStyle

_LINE, _KIND, _RELATED, _RANDOM, _REPEAT, _AGAIN, _DRIFT = range(7)


def action_probs(st: SynthStyle) -> np.ndarray:
    """Per-step move probabilities in action order; they must sum to one."""
    probs = np.array([st.p_line, st.p_kind, st.p_related, st.p_random, st.p_repeat, st.p_again, st.p_drift])
    if abs(probs.sum() - 1.0) > 1e-9 or (probs < 0).any():
        raise ValueError(f"style {st.name!r}: move probabilities {probs.tolist()} must be >= 0 and sum to 1")
    return probs


@dataclass
class Layout:
    """A locale's products sorted by (kind, line, rank) so lines and kinds are contiguous ranges."""

    gprod: np.ndarray
    line: np.ndarray
    kind: np.ndarray
    cw0: np.ndarray
    line_lo: np.ndarray
    line_hi: np.ndarray
    kind_lo: np.ndarray
    kind_hi: np.ndarray
    kind_nlines: np.ndarray
    adj_ptr: np.ndarray
    adj: np.ndarray
    cwd0: np.ndarray
    """Cumulative drift weights: popularity ** drift_power, for a shopper's own-taste jumps."""


def layout(cat: Catalog, kt: Kinds, loc: int, st: SynthStyle) -> Layout:
    """Index ranges and cumulative popularity for weighted sampling with ``searchsorted``."""
    gp = cat.listed[loc]
    w = cat.listed_w[loc]
    gl = cat.prod_line[gp]
    kind = cat.kind[gl]
    order = np.lexsort((cat.prod_rank[gp], gl, kind))
    gp, w, gl, kind = gp[order], w[order], gl[order], kind[order]
    new_line = np.ones(len(gp), dtype=bool)
    new_line[1:] = gl[1:] != gl[:-1]
    line = np.cumsum(new_line) - 1
    line_lo = np.nonzero(new_line)[0]
    line_hi = np.concatenate([line_lo[1:], [len(gp)]])
    kind_lo = np.searchsorted(kind, np.arange(kt.n), side="left")
    kind_hi = np.searchsorted(kind, np.arange(kt.n), side="right")
    kind_nlines = np.bincount(kind[line_lo], minlength=kt.n)
    present = kind_hi > kind_lo
    nbrs = [[j for j in kt.adj[kt.adj_ptr[k]:kt.adj_ptr[k + 1]].tolist() if present[j]] for k in range(kt.n)]
    adj_ptr = np.concatenate([[0], np.cumsum([len(x) for x in nbrs])]).astype(np.int64)
    adj = np.array([j for x in nbrs for j in x], dtype=np.int64)
    return Layout(gp, line, kind, np.concatenate([[0.0], np.cumsum(w)]), line_lo, line_hi, kind_lo, kind_hi,
                  kind_nlines, adj_ptr, adj, np.concatenate([[0.0], np.cumsum(w ** st.drift_power)]))


def sample(rng: np.random.Generator, cw0: np.ndarray, lo: np.ndarray, hi: np.ndarray,
           ex_lo: np.ndarray, ex_hi: np.ndarray) -> np.ndarray:
    """Popularity-weighted index in [lo, hi) outside [ex_lo, ex_hi), for many ranges at once."""
    ex_w = cw0[ex_hi] - cw0[ex_lo]
    u = cw0[lo] + rng.random(len(lo)) * (cw0[hi] - cw0[lo] - ex_w)
    u = np.where(u >= cw0[ex_lo], u + ex_w, u)
    idx = np.clip(np.searchsorted(cw0, u, side="right") - 1, lo, hi - 1)
    inside = (idx >= ex_lo) & (idx < ex_hi)
    if inside.any():  # float rounding at a boundary
        idx[inside] = np.where(ex_hi[inside] < hi[inside], ex_hi[inside], ex_lo[inside] - 1)
    return idx


def step(rng: np.random.Generator, lay: Layout, cur: np.ndarray, probs: np.ndarray,
         history: tuple[np.ndarray, np.ndarray, int] | None, skip_last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One step of every session in ``cur``: pick an action each, fall back when it is impossible.

    ``history`` = (flat items, session offsets, step t) lets a session repeat one of its first t items.
    Returns the new items and the actions taken.
    """
    n = len(cur)
    act = np.searchsorted(np.cumsum(probs), rng.random(n), side="right").clip(0, len(probs) - 1)
    if history is None:  # float rounding of the cumulative probabilities must not pick a repeat
        act[(act == _REPEAT) | (act == _AGAIN)] = _RANDOM
    cl = lay.line[cur]
    ck = lay.kind[cur]
    act[(act == _LINE) & (lay.line_hi[cl] - lay.line_lo[cl] < 2)] = _KIND
    act[(act == _KIND) & (lay.kind_nlines[ck] < 2)] = _RELATED
    act[(act == _RELATED) & (lay.adj_ptr[ck + 1] == lay.adj_ptr[ck])] = _RANDOM
    out = np.empty(n, dtype=np.int64)
    i = np.nonzero(act == _LINE)[0]
    if len(i):
        out[i] = sample(rng, lay.cw0, lay.line_lo[cl[i]], lay.line_hi[cl[i]], cur[i], cur[i] + 1)
    i = np.nonzero(act == _KIND)[0]
    if len(i):
        k = ck[i]
        out[i] = sample(rng, lay.cw0, lay.kind_lo[k], lay.kind_hi[k], lay.line_lo[cl[i]], lay.line_hi[cl[i]])
    i = np.nonzero(act == _RELATED)[0]
    if len(i):
        k = ck[i]
        deg = lay.adj_ptr[k + 1] - lay.adj_ptr[k]
        nk = lay.adj[lay.adj_ptr[k] + np.floor(rng.random(len(i)) * deg).astype(np.int64)]
        lo = lay.kind_lo[nk]
        out[i] = sample(rng, lay.cw0, lo, lay.kind_hi[nk], lo, lo)
    i = np.nonzero(act == _RANDOM)[0]
    if len(i):
        z = np.zeros(len(i), dtype=np.int64)
        out[i] = sample(rng, lay.cw0, z, np.full(len(i), len(lay.gprod)), z, z)
    i = np.nonzero(act == _REPEAT)[0]
    if len(i):
        assert history is not None
        flat, off, t = history
        if skip_last and t == 1:  # nothing before the last product yet
            act[i] = _DRIFT
        else:
            span = t - 1 if skip_last else t
            out[i] = flat[off[i] + np.floor(rng.random(len(i)) * span).astype(np.int64)]
    i = np.nonzero(act == _AGAIN)[0]
    if len(i):
        out[i] = cur[i]
    i = np.nonzero(act == _DRIFT)[0]
    if len(i):
        z = np.zeros(len(i), dtype=np.int64)
        out[i] = sample(rng, lay.cwd0, z, np.full(len(i), len(lay.gprod)), z, z)
    return out, act


def in_prev(flat: np.ndarray, off: np.ndarray, lens: np.ndarray, sel: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Whether each candidate ``cand[j]`` occurs among the prev items of session ``sel[j]``."""
    if not len(sel):
        return np.zeros(0, dtype=bool)
    ln = lens[sel]
    seg = np.concatenate([[0], np.cumsum(ln)[:-1]])
    pos = np.repeat(off[sel] - seg, ln) + np.arange(int(ln.sum()))
    eq = flat[pos] == np.repeat(cand, ln)
    return np.add.reduceat(eq, seg) > 0


@dataclass
class Walks:
    """Sessions sorted by length (longest first): prev items flat, offsets, lengths, next items."""

    flat: np.ndarray
    off: np.ndarray
    lens: np.ndarray
    nxt: np.ndarray


def walk(rng: np.random.Generator, lay: Layout, n: int, st: SynthStyle) -> Walks:
    """``n`` sessions walked step by step over positions, all sessions of the locale at once."""
    lens = np.ceil(rng.lognormal(st.len_mu, st.len_sigma, size=n)).astype(np.int64).clip(1, st.max_len)
    lens = np.sort(lens)[::-1].copy()  # longest first: the sessions still walking are a prefix
    off = np.concatenate([[0], np.cumsum(lens)[:-1]])
    flat = np.empty(int(lens.sum()), dtype=np.int64)
    P = len(lay.gprod)
    z = np.zeros(n, dtype=np.int64)
    cur = sample(rng, lay.cw0, z, np.full(n, P), z, z)
    flat[off] = cur
    probs = action_probs(st)
    active = np.searchsorted(-lens, -np.arange(int(lens.max()) + 1), side="left")  # sessions longer than t
    probs_new = probs.copy()
    probs_new[_REPEAT] = probs_new[_AGAIN] = 0.0
    probs_new /= probs_new.sum()
    for t in range(1, int(lens[0])):
        m = int(active[t])
        nxt, act = step(rng, lay, cur[:m], probs, (flat, off[:m], t), st.repeat_skips_last)
        # shoppers mostly move on to products they have not looked at yet: repeats come from the repeat moves
        prefix = np.full(m, t)
        again = np.nonzero((act != _REPEAT) & (act != _AGAIN))[0]
        for _ in range(st.novelty_tries):
            again = again[in_prev(flat, off, prefix, again, nxt[again])]
            if not len(again):
                break
            nxt[again] = step(rng, lay, cur[again], probs_new, None)[0]
        flat[off[:m] + t] = nxt
        cur[:m] = nxt
    # the next item: same dynamics without repeats, never one of the session's prev items
    nxt = step(rng, lay, cur, probs_new, None)[0]
    sel = np.arange(n)
    bad = sel[in_prev(flat, off, lens, sel, nxt)]
    for _ in range(30):
        if not len(bad):
            break
        nxt[bad] = step(rng, lay, cur[bad], probs_new, None)[0]
        bad = bad[in_prev(flat, off, lens, bad, nxt[bad])]
    for s in bad.tolist():  # long sessions that exhausted their neighbourhood: any unseen product
        seen = set(flat[off[s]:off[s] + lens[s]].tolist())
        while True:
            c = int(sample(rng, lay.cw0, z[:1], np.full(1, P), z[:1], z[:1])[0])
            if c not in seen:
                nxt[s] = c
                break
    return Walks(flat, off, lens, nxt)

