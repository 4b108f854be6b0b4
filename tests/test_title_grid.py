"""Grid completion (task 3): holes of a line's variant grid, found from attributes and aligned titles."""

import pandas as pd
import pytest

from recformer_m2.constants import PRODUCT_COLUMNS
from recformer_m2.data import M2Data
from recformer_m2.titles.grid import GridTitle, align_titles, attribute_spans
from recformer_m2.titles.edits import encode_edit
from recformer_m2.titles.heuristics import last_titles
from recformer_m2.titles.inputs import session_inputs, source_drafts, source_titles, training_pairs

from .conftest import write_m2_folder

# (id, title, brand, color, size): a colour x size grid missing "2 L, Blue"; two pack-count lines (the
# counts are in no column) missing "AAA, Pack of 8" and "Blue, Pack of 8"; a lone lamp; a brandless mug
PRODUCTS = [
    ("K1", "Acme Pro Kettle, 1 L, Red", "Acme", "Red", "1 L"),
    ("K2", "Acme Pro Kettle, 1 L, Blue", "Acme", "Blue", "1 L"),
    ("K3", "Acme Pro Kettle, 2 L, Red", "Acme", "", "2 L"),           # colour field missing
    ("B1", "Bolt Max Batteries, AA, Pack of 4", "Bolt", "", "AA"),
    ("B2", "Bolt Max Batteries, AA, Pack of 8", "Bolt", "", "AA"),
    ("B3", "Bolt Max Batteries, AAA, Pack of 4", "Bolt", "", "AAA"),
    ("P1", "Cora Zen Pens, Black, Pack of 4", "Cora", "Black", ""),
    ("P2", "Cora Zen Pens, Black, Pack of 8", "Cora", "Black", ""),
    ("P3", "Cora Zen Pens, Blue, Pack of 4", "Cora", "Blue", ""),
    ("Z1", "Zeta Lamp, Green", "Zeta", "Green", ""),
    ("M1", "Nova Mug, 300 ml", "", "", ""),
    ("M2", "Nova Mug, 400 ml", "", "", "400 ml"),
    ("E1", "", "Acme", "", ""),                                          # a product without a title
]
HOLES = {"K1": "Acme Pro Kettle, 2 L, Blue", "B3": "Bolt Max Batteries, AAA, Pack of 8",
         "P3": "Cora Zen Pens, Blue, Pack of 8"}


@pytest.fixture
def data(tmp_path, cache_dir) -> M2Data:
    sessions = [(["Z1", "K1"], "K2", "UK"), (["B1"], "B2", "UK"), (["B3"], "B1", "UK")]
    tests = {3: [(["Z1", "K1"], "UK"), (["B3"], "UK"), (["K1", "P3"], "UK"), (["K1", "Z1"], "UK"),
                 (["M1"], "UK"), (["E1"], "UK"), (["K1"], "DE")]}
    folder = write_m2_folder(tmp_path / "d", [(p[0], "UK", p[1]) for p in PRODUCTS], sessions, tests)
    rows = [dict(dict.fromkeys(PRODUCT_COLUMNS, ""), id=i, locale="UK", title=t, price=1.0, brand=b, color=c, size=s)
            for i, t, b, c, s in PRODUCTS]
    pd.DataFrame(rows, columns=list(PRODUCT_COLUMNS)).to_csv(folder / "products_train.csv", index=False)
    return M2Data(folder, cache_dir=cache_dir)


@pytest.fixture
def grid(data) -> GridTitle:
    return GridTitle(min_makers=2).fit(data.catalog, data.train)  # two makers show pack counts here


def test_the_hole_of_a_colour_by_size_grid_is_written_exactly(grid):
    assert grid.candidates("Acme Pro Kettle, 1 L, Red", "UK", 5) == [HOLES["K1"]]
    assert grid.candidates("Acme Pro Kettle, 2 L, Red", "UK", 5) == [HOLES["K1"]]  # colour field empty


def test_pack_counts_are_found_by_aligning_titles(grid, data):
    assert grid.candidates("Bolt Max Batteries, AAA, Pack of 4", "UK", 5) == [HOLES["B3"]]
    assert grid.candidates("Cora Zen Pens, Blue, Pack of 4", "UK", 5) == [HOLES["P3"]]
    attributes_only = GridTitle(min_makers=2, learn=False).fit(data.catalog)
    assert attributes_only.candidates("Bolt Max Batteries, AAA, Pack of 4", "UK", 5) == []


def test_alignment_learns_swapping_spans_and_classes_from_several_makers_only():
    titles = [("A", "A Pen , Pack of 2"), ("A", "A Pen , Pack of 3"), ("A", "A Pen"), ("B", "B Cup , Pack of 3"),
              ("B", "B Cup"), ("B", "B Cup , Pack of 2"), ("C", "C Red Box"), ("C", "C Big Box")]
    learned = align_titles([tuple(t.split()) for _, t in titles], [("UK", m) for m, _ in titles], min_makers=2,
                           min_context=1)
    assert learned.classes["2"] == learned.classes["3"]
    assert learned.symbols((",", "Pack", "of", "3")) in learned.variants   # one template for every count
    assert ("Red",) not in learned.variants                                # one maker only


def test_a_glued_suffix_is_learnt_from_titles_that_hold_their_own_value():
    table = pd.DataFrame({"title": [f"X Case iPhone {n}用" for n in range(12, 18)], "color": "",
                          "size": [f"iPhone {n}" for n in range(12, 18)], "model": ""})
    spans = attribute_spans(table)
    assert spans[("iPhone", "14用")] == "size" and spans[("iPhone", "14")] == "size"


def test_candidates_rank_the_hole_completing_the_grid_first(tmp_path, cache_dir):
    # sizes 1 L, 2 L x colours Red, Blue, Green with the 2 L row missing two cells
    titles = ["Acme Pro Kettle, 1 L, Red", "Acme Pro Kettle, 1 L, Blue", "Acme Pro Kettle, 1 L, Green",
              "Acme Pro Kettle, 2 L, Red"]
    folder = write_m2_folder(tmp_path / "r", [(f"K{i}", "UK", t, "Acme") for i, t in enumerate(titles)],
                             [(["K0"], "K1", "UK")])
    catalog = M2Data(folder, cache_dir=cache_dir).catalog
    catalog.table["color"] = [t.rsplit(", ", 1)[1] for t in titles]
    catalog.table["size"] = [t.split(", ")[1] for t in titles]
    grid = GridTitle().fit(catalog)
    # both holes share the missing row; the one changing fewer slots comes first
    assert grid.candidates("Acme Pro Kettle, 1 L, Blue", "UK", 5) == [
        "Acme Pro Kettle, 2 L, Blue", "Acme Pro Kettle, 2 L, Green"]
    assert GridTitle(max_changes=1).fit(catalog).candidates("Acme Pro Kettle, 1 L, Blue", "UK", 5) == [
        "Acme Pro Kettle, 2 L, Blue"]
    assert grid.candidates("Acme Pro Kettle, 1 L, Blue", "UK", 1) == ["Acme Pro Kettle, 2 L, Blue"]


def test_no_candidate_is_a_catalog_title(grid, data):
    listed = set(data.catalog.table["title"])
    for title in listed:
        found = grid.candidates(title, "UK", 10)
        assert not listed & set(found) and len(found) == len(set(found))


def test_generate_fills_holes_and_falls_back_like_last_title(grid, data):
    test = data.test(3)
    out = grid.generate(test)
    last = last_titles(data.catalog, test)
    assert out[0] == HOLES["K1"] and out[1] == HOLES["B3"] and out[2] == HOLES["P3"]
    assert out[3] == "Zeta Lamp, Green"          # no sibling: the last title
    assert out[4] in ("Nova Mug, 300 ml", "Nova Mug, 400 ml")  # no brand, no colour: no crash
    assert out[5] == last[5] == ""               # the last product has no title
    assert out[6] == last[6] == ""               # no product of the session is sold in its locale
    assert grid.candidates("", "UK", 3) == [] and grid.candidates("Acme Pro Kettle, 1 L, Red", "FR", 3) == []
    assert grid.generate(test) == out            # deterministic


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="model_code"):
        GridTitle(model_code="guess")
    with pytest.raises(ValueError, match="max_changes"):
        GridTitle(max_changes=0)


def test_grid_title_is_a_title_method():
    from recformer_m2 import titles

    assert titles.TITLE_METHODS["grid-title"] is titles.GridTitle


def test_a_catalog_title_counted_unlisted_is_a_hole(grid):
    # B1 is listed, so no hole there; a training session's target counts as unlisted, as a task-3 target is
    batteries = "Bolt Max Batteries, AAA, Pack of 4"
    assert "Bolt Max Batteries, AA, Pack of 4" not in grid.candidates(batteries, "UK", 5)
    assert grid.candidates(batteries, "UK", 5, unlisted={"Bolt Max  Batteries, AA, Pack of 4"})[0] == (
        "Bolt Max Batteries, AA, Pack of 4")   # spaces normalised


def test_training_sources_draft_holes_with_the_target_unlisted(grid, data):
    pairs = training_pairs(data.catalog, data.train, k=2, grid=grid, n_drafts=2)
    # B2 is the only "Pack of 8": unlisted, no hole holds that value; B1 is a hole of B3's line once unlisted
    assert pairs.targets[1:] == ["Bolt Max Batteries, AA, Pack of 8", "Bolt Max Batteries, AA, Pack of 4"]
    assert pairs.drafts[1] == []
    assert sorted(pairs.drafts[2]) == ["Bolt Max Batteries, AA, Pack of 4", "Bolt Max Batteries, AAA, Pack of 8"]
    assert pairs.sources[2] == " <draft> ".join(["<UK> Bolt Max Batteries, AAA, Pack of 4", *pairs.drafts[2]])
    assert [source_drafts(s) for s in pairs.sources] == pairs.drafts
    assert [source_titles(s) for s in pairs.sources] == pairs.titles
    assert encode_edit(pairs.targets[2], pairs.titles[2], pairs.drafts[2]) == (
        f"<d{pairs.drafts[2].index(pairs.targets[2]) + 1}>")
    listed = set(data.catalog.table["title"])
    tested = session_inputs(data.catalog, data.test(3), k=2, grid=grid, n_drafts=2)
    assert tested.drafts[1] == [HOLES["B3"]] and not listed & {d for ds in tested.drafts for d in ds}
    assert tested.targets == [""] * len(tested.sources)
