"""Sizes (``SCALES``) and styles (``STYLES``) of the synthetic generator: typed knobs, one registry each.

A *scale* says how many sessions and products each locale gets; a *style* says what the world looks
like: how big the catalogue is relative to the sessions, how shoppers move through it, and how titles
are written. ``classic`` is the generator as it was before styles existed (same seed, same bytes);
``m2`` is calibrated to real Amazon-M2 ES/FR/IT sessions (``bench/bench_calibration.py``) and is the
default; ``bazaar`` is a third world with other title templates and other session dynamics, so that a
method can be checked on more than one generator.
"""

from __future__ import annotations

from dataclasses import dataclass

Six = tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class SynthScale:
    """Size of a generated data set; per-locale numbers are in ``LOCALES`` order (UK, DE, JP, ES, FR, IT)."""

    name: str
    train_sessions: tuple[int, int, int, int, int, int]
    products: tuple[int, int, int, int, int, int]
    test_fraction: float = 0.09
    """Task 1/2 test sessions per training session of the locale (the real files: about 9%)."""
    task3_fraction: float = 0.02
    """Task 3 test sessions per training session of the locale."""
    min_test: int = 2
    """At least this many test sessions per locale and task, so tiny data sets still cover every locale."""

    def n_test(self, loc: int) -> int:
        """Task 1 (UK/DE/JP) or task 2 (ES/FR/IT) test sessions of locale ``loc``."""
        return max(self.min_test, round(self.test_fraction * self.train_sessions[loc]))

    def n_task3(self, loc: int) -> int:
        """Task 3 test sessions of locale ``loc``."""
        return max(self.min_test, round(self.task3_fraction * self.train_sessions[loc]))


SCALES: dict[str, SynthScale] = {
    "tiny": SynthScale("tiny", (100, 100, 100, 12, 12, 12), (240, 250, 200, 40, 40, 40)),
    "small": SynthScale("small", (20_000, 19_000, 17_000, 1_800, 2_000, 2_200),
                        (6_000, 6_200, 4_800, 800, 850, 950)),
    "medium": SynthScale("medium", (200_000, 190_000, 170_000, 18_000, 20_000, 22_000),
                         (60_000, 62_000, 48_000, 8_000, 8_500, 9_500)),
    "full": SynthScale("full", (1_182_181, 1_111_416, 979_119, 89_047, 117_561, 126_925),
                       (454_700, 471_200, 359_100, 38_600, 40_500, 45_900)),
}
"""Named sizes. ``full`` has the real training-session counts and about 1.41M product rows."""


@dataclass(frozen=True)
class SynthStyle:
    """The knobs of one generator style. Defaults are ``classic`` (the generator before styles existed)."""

    name: str = "classic"

    # --- catalogue ---------------------------------------------------------------------------------
    catalogue_exponent: float | None = None
    """None: each locale has the scale's product count. A number a: the full data's product count times
    (the scale's sessions / the full data's sessions) ** a (Heaps' law: a sample of sessions from a
    large catalogue sees products sublinearly), so a small data set keeps real data's sparsity."""
    import_from_de: Six = (0.15, 0.0, 0.05, 0.40, 0.40, 0.40)
    """Share of a locale's product rows that are DE products (same id) sold there too."""
    import_keep: float = 0.7
    """Chance that each variant of an imported DE line is sold in the importing locale too."""
    jp_katakana_brands: float = 0.4
    """Share of Japan-only lines whose brand is written in katakana."""
    variants_p: float = 0.35
    """Geometric parameter of variants listed per line (mean about 1/p, capped by the variant space)."""
    line_pop_sigma: float = 1.6
    """Spread of log line popularity: a few lines take much of the traffic, many are rarely seen."""
    lines_per_brand: float = 12.0
    """Brand pool size per category = its lines / this: fewer lines per brand, more brands."""
    no_series: float = 0.15
    no_brand: float = 0.02
    has_model: float = 0.55
    model_in_title: float = 0.3
    material_shown: float = 0.6
    no_desc: float = 0.08
    blank_color: float = 0.1
    blank_size: float = 0.1
    blank_model: float = 0.08

    # --- session dynamics --------------------------------------------------------------------------
    p_line: float = 0.47
    """Per step: another variant of the current line."""
    p_kind: float = 0.20
    """Another line of the same kind."""
    p_related: float = 0.13
    """A product of a related kind."""
    p_random: float = 0.05
    """A product drawn by popularity over the whole locale."""
    p_repeat: float = 0.15
    """One of the session's earlier products again (the last one included)."""
    repeat_skips_last: bool = False
    """A repeat move returns to a product before the last one (viewing the last again is ``p_again``);
    at the session's second position, where there is none, it drifts instead."""
    p_again: float = 0.0
    """The product just viewed, again (a product viewed twice in a row)."""
    p_drift: float = 0.0
    """A product drawn by the shopper's own taste: popularity flattened by ``drift_power``."""
    drift_power: float = 0.3
    """Popularity exponent of drift draws (0: uniform over the locale's products, 1: as popular)."""
    len_mu: float = 0.95
    len_sigma: float = 0.8
    """Session length (prev items) = ceil(lognormal(mu, sigma)), at most ``max_len``."""
    max_len: int = 200
    novelty_tries: int = 4
    """Redraws of a non-repeat step that landed on a product the session has already seen."""

    # --- task 3 ------------------------------------------------------------------------------------
    task3_last: float = 0.7
    """Task 3: chance the new product's line is the last item's (else a random earlier item's line)."""
    task3_walk: bool = False
    """Task 3: the new product is an unlisted variant of the line one walk step from the last item
    reaches (that line, another of its kind, a related kind, ...), as a real next product is."""

    # --- titles ------------------------------------------------------------------------------------
    title_family: str = "classic"
    """Key of ``render.TITLE_FAMILIES``: one template per locale (classic) or per brand and seller."""
    brand_template: float = 1.0
    """Chance a line uses its brand's template rather than a template of its own seller."""
    marketing: float = 0.0
    """Share of lines whose titles carry marketing words ("Premium", "2024 Neu")."""
    abbreviate: float = 0.0
    """Share of lines written in short forms (pack "3 pcs", "1.8m", no spaces in measures)."""
    drop_attr: float = 0.0
    """Chance, per line and title slot (series, size, colour, pack, brand), of leaving it out of its titles."""
    typo: float = 0.0
    """Chance a product title has one typo (two adjacent letters swapped or one dropped)."""
    variant_text: float = 0.0
    """Chance a variant's title carries a free-text phrase of its own ("with stand", "2023 version")."""
    seller_suffix: float = 0.0
    """Share of lines whose titles end with a seller's note ("- Official", "| Fast delivery")."""


STYLES: dict[str, SynthStyle] = {
    "classic": SynthStyle(),
    "m2": SynthStyle(
        name="m2",
        catalogue_exponent=0.68, variants_p=0.3, line_pop_sigma=0.4, lines_per_brand=4.0,
        p_line=0.38, p_kind=0.065, p_related=0.055, p_random=0.0, p_repeat=0.24, p_again=0.085, p_drift=0.175,
        repeat_skips_last=True, drift_power=0.0, len_mu=0.87, len_sigma=0.82, task3_walk=True, task3_last=0.5,
        title_family="seller", brand_template=0.7, marketing=0.35, abbreviate=0.3, drop_attr=0.3, typo=0.04,
        variant_text=0.5, seller_suffix=0.15, model_in_title=0.35, no_series=0.3,
    ),
    "bazaar": SynthStyle(
        name="bazaar",
        catalogue_exponent=0.7, variants_p=0.45, line_pop_sigma=1.4, lines_per_brand=3.0,
        p_line=0.15, p_kind=0.32, p_related=0.16, p_random=0.06, p_repeat=0.14, p_again=0.05, p_drift=0.12,
        drift_power=0.4, len_mu=0.75, len_sigma=0.9, task3_walk=True, task3_last=0.4,
        title_family="keyword", brand_template=0.4, marketing=0.6, abbreviate=0.5, drop_attr=0.2, typo=0.06,
        variant_text=0.7, seller_suffix=0.3, model_in_title=0.6, no_series=0.4,
    ),
}
"""Named styles. ``DEFAULT_STYLE`` is the one calibrated to real sessions."""

DEFAULT_STYLE = "m2"


def get_style(style: str | SynthStyle) -> SynthStyle:
    """A style by name (or the style itself), with the list of names when it is unknown."""
    if isinstance(style, SynthStyle):
        return style
    if style not in STYLES:
        raise ValueError(f"unknown synth style {style!r}; choose one of {sorted(STYLES)}")
    return STYLES[style]
