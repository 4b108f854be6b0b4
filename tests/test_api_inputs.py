"""The Python API checks its inputs up front (issue 20, case 8): a typed error naming the argument, popularity
for sessions with nothing to encode, a warning (or ``strict`` refusal) outside the model's training locales,
and attribute dicts in ``recommend`` as in ``encode_sessions``."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from recformer_m2 import Recommender
from recformer_m2.constants import LOCALES
from recformer_m2.finetuning import run_finetuning
from recformer_m2.heuristics import occurrence_counts
from recformer_m2.recommender import InputError
from tests.test_finetune import tiny_config


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> Recommender:
    """A Recommender over a tiny task-2 (ES/FR/IT) finetuning run."""
    from recformer_m2.synth import generate

    root = tmp_path_factory.mktemp("api")
    generate(root / "data", scale="tiny", seed=0, style="classic")  # small and fast; the m2 style is larger
    best = run_finetuning(root / "data", "none", root / "out", tiny_config(stage1_epochs=1, stage2_epochs=1))
    return Recommender.from_pretrained(best, root / "data", device="cpu", cache_dir=root / "cache")


def _es_ids(rec: Recommender, n: int) -> list[str]:
    return list(rec.catalog.ids[rec.catalog.locale_codes("ES")[:n]])


def test_items_as_a_string_is_refused_naming_the_argument(rec):
    item = _es_ids(rec, 1)[0]
    with pytest.raises(InputError, match=re.escape('sessions[0]["items"]: a list of ids or attribute dicts is needed, '
                                                   f"got str (wrap one in a list: ['{item}'])")):
        rec.recommend([{"items": item, "locale": "ES"}])
    with pytest.raises(InputError, match=re.escape('sessions[0]["items"]')):
        rec.encode_sessions([{"items": item, "locale": "ES"}])
    with pytest.raises(InputError, match="^sessions: a list of session dicts is needed, got dict"):
        rec.recommend({"items": [item], "locale": "ES"})


def test_bad_or_missing_locale_names_the_allowed_ones(rec):
    items = _es_ids(rec, 2)
    with pytest.raises(InputError, match=re.escape('sessions[1]["locale"]: \'SP\' is not a locale; one of '
                                                   + ", ".join(LOCALES))) as err:
        rec.recommend([{"items": items, "locale": "ES"}, {"items": items, "locale": "SP"}])
    assert err.value.argument == 'sessions[1]["locale"]'
    with pytest.raises(InputError, match=re.escape('sessions[0]["locale"]: missing; one of UK')):
        rec.recommend([{"items": items}])
    with pytest.raises(InputError, match=re.escape("locale: 'es' is not a locale")):
        rec.encode_items(items, locale="es")


@pytest.mark.parametrize("k", [-1, 0, 2.5, True, "10", None])
def test_k_must_be_a_positive_integer(rec, k):
    with pytest.raises(InputError, match=re.escape(f"k: a positive integer is needed, got {k!r}")):
        rec.recommend([{"items": _es_ids(rec, 2), "locale": "ES"}], k=k)


def test_empty_and_unknown_sessions_get_their_locales_popularity_with_a_counted_warning(rec, caplog):
    counts = occurrence_counts(rec.data.train, rec.catalog.num_ids)
    sessions = [{"items": [], "locale": "ES"}, {"items": ["B0NOTREAL1", "B0NOTREAL2"], "locale": "FR"}]
    with caplog.at_level(logging.WARNING):
        ranked = rec.recommend(sessions, k=5)  # every session of the call is empty: no IndexError
    assert "2 of 2 session(s) have no item to encode" in caplog.text
    assert "2 session item(s) are not in the catalog" in caplog.text
    for ids, session in zip(ranked, sessions):
        locale = LOCALES.index(session["locale"])
        codes = rec.catalog.locale_codes(locale)
        expected = codes[np.argsort(-counts[locale, codes], kind="stable")][:5]
        assert ids == list(rec.catalog.ids[expected])
    mixed = rec.recommend([{"items": _es_ids(rec, 3), "locale": "ES"}, {"items": [], "locale": "IT"}], k=5)
    assert len(mixed[0]) == 5 and len(mixed[1]) == 5


def test_a_locale_outside_the_training_locales_warns_or_is_refused_when_strict(rec, caplog):
    uk = [{"items": list(rec.catalog.ids[rec.catalog.locale_codes("UK")[:2]]), "locale": "UK"}]
    assert rec.training_locales == ("ES", "FR", "IT")
    with caplog.at_level(logging.WARNING):
        assert len(rec.recommend(uk, k=3)[0]) == 3
    assert "1 session(s) in locale(s) UK, which the model was not trained for (ES, FR, IT)" in caplog.text
    with pytest.raises(InputError, match=re.escape('sessions[0]["locale"]: UK is not a locale the model was trained')):
        rec.recommend(uk, k=3, strict=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the coded path the command line takes warns too
        rec.recommend_codes(rec.data.test(1).select(np.arange(3)), k=3, progress=False)
    assert "which the model was not trained for" in caplog.text


def test_recommend_takes_attribute_dicts_as_encode_sessions_does(rec):
    ids = _es_ids(rec, 2)
    new_product = {"title": "Brand-new gadget in blue", "brand": "Nobody"}
    ranked = rec.recommend([{"items": [*ids, new_product], "locale": "ES"}, {"items": [new_product], "locale": "IT"}],
                           k=10)
    assert [len(r) for r in ranked] == [10, 10] and not set(ranked[0]) & set(ids)
    es = set(rec.catalog.ids[rec.catalog.locale_codes("ES")])
    assert set(ranked[0]) <= es
    # the same query as encode_sessions makes (the newest item has no table row to add)
    query = rec.encode_sessions([{"items": [*ids, new_product], "locale": "ES"}])
    assert query.shape == (1, rec.encoder.model.config.hidden_size)
    with pytest.raises(InputError, match=re.escape('sessions[0]["items"]: an item is an id (str) or an attribute dict')):
        rec.recommend([{"items": [3], "locale": "ES"}])
