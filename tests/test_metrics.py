"""Ranking metrics and title BLEU against values worked out by hand."""

import math

import numpy as np
import pytest
import sacrebleu

from recformer_m2.metrics import evaluate_rankings, rank_metrics, score_ranks, target_ranks, title_bleu


def test_ranks_one_three_and_absent():
    # Targets at rank 1, rank 3 and absent.
    # MRR  = (1 + 1/3 + 0) / 3 = 4/9
    # Recall = (1 + 1 + 0) / 3 = 2/3
    # NDCG = (1/log2(2) + 1/log2(4) + 0) / 3 = (1 + 0.5 + 0) / 3 = 0.5
    predictions = np.array([[7, 8, 9], [1, 2, 3], [4, 5, 6]])
    targets = np.array([7, 3, 99])
    metrics = rank_metrics(predictions, targets, k=3)
    np.testing.assert_allclose(metrics["mrr"], [1.0, 1 / 3, 0.0])
    np.testing.assert_allclose(metrics["recall"], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(metrics["ndcg"], [1.0, 0.5, 0.0])
    assert metrics["mrr"].mean() == pytest.approx(4 / 9)
    assert metrics["ndcg"].mean() == pytest.approx(0.5)


def test_target_just_past_cutoff_counts_zero():
    # Target at rank 4 with k = 3: outside the list, so every metric is 0.
    # With k = 4 it counts: MRR 1/4, NDCG 1/log2(5).
    predictions = np.array([[1, 2, 3, 4]])
    targets = np.array([4])
    at3 = rank_metrics(predictions, targets, k=3)
    assert (at3["mrr"][0], at3["recall"][0], at3["ndcg"][0]) == (0.0, 0.0, 0.0)
    at4 = rank_metrics(predictions, targets, k=4)
    assert at4["mrr"][0] == pytest.approx(0.25)
    assert at4["ndcg"][0] == pytest.approx(1 / math.log2(5))


def test_default_k_is_100():
    # Rank 100 counts (MRR 0.01), rank 101 does not.
    row = np.arange(200)
    predictions = np.stack([row, row])
    metrics = rank_metrics(predictions, np.array([99, 100]))
    np.testing.assert_allclose(metrics["mrr"], [0.01, 0.0])


def test_string_ids_ragged_rows_and_duplicates():
    # Row 0: target at rank 2 -> MRR 1/2, NDCG 1/log2(3).
    # Row 1: shorter list without the target -> 0.
    # Row 2: duplicate id 'B' at ranks 1 and 3 -> first occurrence, MRR 1.
    # Row 3: None padding never matches a None target -> 0.
    # Row 4: empty list -> 0.
    predictions = [["A", "B", "C"], ["A"], ["B", "C", "B"], [None, None], []]
    targets = ["B", "Z", "B", None, "A"]
    metrics = rank_metrics(predictions, targets, k=3)
    np.testing.assert_allclose(metrics["mrr"], [0.5, 0.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(metrics["ndcg"], [1 / math.log2(3), 0.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(metrics["recall"], [1.0, 0.0, 1.0, 0.0, 0.0])


def test_integer_padding_never_matches():
    # A -1 target against -1 padding is no hit; duplicate 5 counts at rank 1.
    predictions = np.array([[3, -1, -1], [5, 6, 5]])
    targets = np.array([-1, 5])
    np.testing.assert_allclose(rank_metrics(predictions, targets, k=3)["mrr"], [0.0, 1.0])


def test_vectorised_path_matches_row_by_row_reference():
    # The integer fast path against the generic list path on seeded data with padding and repeats.
    rng = np.random.default_rng(0)
    predictions = rng.integers(-1, 40, size=(500, 30))
    targets = rng.integers(-1, 40, size=500)
    fast = target_ranks(predictions, targets, k=20)
    slow = target_ranks([list(row) for row in predictions], list(targets), k=20)
    np.testing.assert_array_equal(fast, slow)
    assert (fast > 0).any() and (fast == 0).any()


def test_score_ranks_count_ties_against_the_target_on_numpy_and_torch():
    # Row 0: target 1 ties with column 2 (0.5) below column 0 (0.9): rank 3, not 2.
    # Row 1: every score equal: the target ranks last (4). Row 2: target masked (-inf): absent (0).
    # Row 3: a strict winner ranks 1.
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, -np.inf, 0.0], [0.1, 0.2, 0.3, 0.4]])
    targets = np.array([1, 0, 2, 3])
    np.testing.assert_array_equal(score_ranks(scores, targets), [3, 4, 0, 1])
    torch = pytest.importorskip("torch")
    ranks = score_ranks(torch.tensor(scores, dtype=torch.float32), torch.tensor(targets))
    assert isinstance(ranks, torch.Tensor) and ranks.tolist() == [3, 4, 0, 1]


def test_score_ranks_agree_with_target_ranks_of_a_stable_descending_sort_without_ties():
    # Without ties the rank from scores is the target's place in the sorted list.
    rng = np.random.default_rng(1)
    scores = rng.permutation(200 * 50).reshape(200, 50).astype(np.float64)
    targets = rng.integers(0, 50, size=200)
    order = np.argsort(-scores, axis=1, kind="stable")
    np.testing.assert_array_equal(score_ranks(scores, targets), target_ranks(order, targets, k=50))


def test_string_row_is_refused():
    with pytest.raises(TypeError, match="single string"):
        rank_metrics(["ABC"], ["A"])


def test_length_mismatch_is_refused():
    with pytest.raises(ValueError, match="2 prediction rows but 1 targets"):
        rank_metrics(np.zeros((2, 3), dtype=int), np.zeros(1, dtype=int))


def test_evaluate_rankings_per_locale_and_micro_overall():
    # DE: ranks 1 and absent -> MRR (1 + 0)/2 = 0.5, Recall 0.5, n 2
    # UK: rank 2            -> MRR 1/2, Recall 1, NDCG 1/log2(3), n 1
    # JP: rank 4 (k=3 cut)  -> MRR@3 0, MRR@100 1/4
    # overall (micro, 4 sessions): MRR@100 = (1 + 0 + 1/2 + 1/4) / 4 = 0.4375
    # whereas a mean of the three locale means would be (0.5 + 0.5 + 0.25) / 3 = 0.4167.
    predictions = [["a", "b"], ["c", "d"], ["e", "f"], ["g", "h", "i", "j"]]
    targets = ["a", "z", "f", "j"]
    locales = ["DE", "DE", "UK", "JP"]
    table = evaluate_rankings(predictions, targets, locales, ks=(3, 100))
    assert list(table.index) == ["UK", "DE", "JP", "overall"]  # LOCALES order, then overall
    assert list(table.columns) == ["MRR@3", "Recall@3", "NDCG@3", "MRR@100", "Recall@100", "NDCG@100", "n"]
    assert table.loc["DE", "MRR@100"] == pytest.approx(0.5)
    assert table.loc["DE", "Recall@100"] == pytest.approx(0.5)
    assert table.loc["UK", "NDCG@100"] == pytest.approx(1 / math.log2(3))
    assert table.loc["JP", "MRR@3"] == 0.0
    assert table.loc["JP", "MRR@100"] == pytest.approx(0.25)
    assert table.loc["overall", "MRR@100"] == pytest.approx(0.4375)
    assert table.loc["overall", "Recall@3"] == pytest.approx(2 / 4)
    assert table["n"].tolist() == [1, 2, 1, 4]


def test_evaluate_rankings_refuses_unknown_locale():
    with pytest.raises(ValueError, match="unknown locales"):
        evaluate_rankings([["a"]], ["a"], ["uk"])


def test_bleu_identical_and_disjoint():
    same = title_bleu(["the cat sat on the mat"], ["the cat sat on the mat"], ["UK"])
    assert same.loc["UK", "BLEU"] == pytest.approx(1.0)
    disjoint = title_bleu(["alpha beta gamma delta"], ["one two three four"], ["DE"])
    assert disjoint.loc["DE", "BLEU"] == 0.0


def test_bleu_partial_by_hand_and_against_sacrebleu():
    # hyp: the cat sat on the mat / ref: the cat sat on a mat (6 tokens each, BP = 1)
    # 1-grams 5/6 ('the' clipped to 1), 2-grams 3/5, 3-grams 2/4, 4-grams 1/3
    # BLEU = (5/6 * 3/5 * 1/2 * 1/3) ** (1/4) = (1/12) ** 0.25 = 0.5373
    hyp, ref = "the cat sat on the mat", "the cat sat on a mat"
    table = title_bleu([hyp], [ref], ["UK"])
    assert table.loc["UK", "BLEU"] == pytest.approx((1 / 12) ** 0.25)
    expected = sacrebleu.corpus_bleu([hyp], [[ref]], tokenize="none").score / 100
    assert table.loc["UK", "BLEU"] == pytest.approx(expected)


def test_bleu_13a_splits_punctuation():
    # '13a' makes 'Kabel,' two tokens, so the comma alone does not break the match: 1.0.
    table = title_bleu(["USB Kabel, Schwarz"], ["USB Kabel , Schwarz"], ["DE"])
    assert table.loc["DE", "BLEU"] == pytest.approx(1.0)


def test_bleu_japanese_counts_characters():
    # hyp ケーブル黒 / ref ケーブル白: one token each under word tokenisation (BLEU 0), but as
    # characters: 1-grams 4/5, 2-grams 3/4, 3-grams 2/3, 4-grams 1/2, BP = 1
    # BLEU = (4/5 * 3/4 * 2/3 * 1/2) ** (1/4) = (1/5) ** 0.25 = 0.6687
    table = title_bleu(["ケーブル黒"], ["ケーブル白"], ["JP"])
    assert table.loc["JP", "BLEU"] == pytest.approx(0.2 ** 0.25)
    assert table.loc["JP", "BLEU"] == pytest.approx(
        sacrebleu.corpus_bleu(["ケーブル黒"], [["ケーブル白"]], tokenize="char").score / 100)


def test_bleu_overall_pools_pretokenised_locales_and_allows_empty():
    hyps = ["the cat sat on the mat", "ケーブル黒", "", None]
    refs = ["the cat sat on a mat", "ケーブル白", "ein Kabel", "un cable"]
    locales = ["UK", "JP", "DE", "ES"]
    table = title_bleu(hyps, refs, locales)
    assert list(table.index) == ["UK", "DE", "JP", "ES", "overall"]
    assert table.loc["DE", "BLEU"] == 0.0 and table.loc["ES", "BLEU"] == 0.0
    pooled = ["the cat sat on the mat", "ケ ー ブ ル 黒", "", ""]
    pooled_refs = ["the cat sat on a mat", "ケ ー ブ ル 白", "ein Kabel", "un cable"]
    expected = sacrebleu.corpus_bleu(pooled, [pooled_refs], tokenize="none").score / 100
    assert table.loc["overall", "BLEU"] == pytest.approx(expected)
    assert 0.0 < table.loc["overall", "BLEU"] < 1.0
    assert table["n"].tolist() == [1, 1, 1, 1, 4]


def test_bleu_statistics_reproduce_title_bleu_on_every_subset():
    from recformer_m2.metrics import bleu_statistics, corpus_bleu_of

    rng = np.random.default_rng(0)
    words = "red blue pack 2er 500 ml Kapuvoia Pillow".split()
    refs = [" ".join(rng.choice(words, rng.integers(3, 9))) for _ in range(120)]
    hyps = [" ".join(rng.choice(words, rng.integers(0, 9))) for _ in range(120)]
    hyps[5] = ""  # an empty hypothesis adds no matches
    locales = [["UK", "JP", "DE"][i % 3] for i in range(120)]
    stats = bleu_statistics(hyps, refs, locales)
    table = title_bleu(hyps, refs, locales)
    assert corpus_bleu_of(stats) == pytest.approx(table.loc["overall", "BLEU"], abs=1e-12)
    for loc in ("UK", "JP", "DE"):
        mask = np.array(locales) == loc
        assert corpus_bleu_of(stats[mask]) == pytest.approx(table.loc[loc, "BLEU"], abs=1e-12)
    # hand-counted: "a b c" against "a b d": unigrams 2/3, bigrams 1/2, no 3- or 4-grams matched
    one = bleu_statistics(["a b c"], ["a b d"], ["UK"])
    assert one.tolist() == [[2, 1, 0, 0, 3, 2, 1, 0, 3, 3]]


def test_paired_bootstrap_hand_values():
    from recformer_m2.metrics import paired_bootstrap

    a = np.array([1.0, 0.5, 0.0, 1.0])
    same = paired_bootstrap(a, a, samples=50)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0, "share_a_better": 0.0}
    better = paired_bootstrap(a + 0.1, a, samples=50)
    assert better["difference"] == pytest.approx(0.1) and better["share_a_better"] == 1.0
    assert better["low"] == pytest.approx(0.1) and better["high"] == pytest.approx(0.1)
    mixed = paired_bootstrap(np.array([1.0, 0.0] * 50), np.array([0.0, 1.0] * 50), samples=400)
    assert mixed["difference"] == 0.0 and mixed["low"] < 0 < mixed["high"] and 0.3 < mixed["share_a_better"] < 0.7
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap(a, a[:2])
