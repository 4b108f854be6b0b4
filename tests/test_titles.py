"""Title generation (task 3): source building, a tiny mT5 trained a few steps, save/load, heuristics, LoRA."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recformer_m2.constants import LOCALES
from recformer_m2.data import M2Data
from recformer_m2.heuristics import LastTitle
from recformer_m2.tokenizer import train_tokenizer
from recformer_m2.titles import TitleConfig, TitleGenerator, TrimmedTitle, fit_title_model
from recformer_m2.titles.heuristics import WordSurvival, last_titles, trim
from recformer_m2.titles.edits import copy_share, decode_edit, encode_edit
from recformer_m2.titles.inputs import (
    BucketBatches, PairCollator, TitlePairs, ensure_tokens, session_sources, source_titles, training_pairs,
)
from recformer_m2.titles.inputs import SiblingTitles
from recformer_m2.titles.model import DraftBias, TitleModule, add_lora, gated_script, scratch_model, to_titles
from recformer_m2.titles.train import heldout_product_split, sample_k

from .conftest import write_m2_folder

DE = LOCALES.index("DE")


@pytest.fixture
def toy(tmp_path, cache_dir) -> M2Data:
    products = [(x, "DE", f"Marke {x} Kabel, Rot") for x in "ABCDE"] + [("F", "UK", "uk F"), ("C", "UK", "uk C")]
    products[1] = ("B", "DE", "Marke B Kabel, Blau", "Acme")
    sessions = [
        (["A", "B"], "C", "DE"),
        (["A", "F"], "D", "DE"),   # F has no DE row: skipped in the source
        (["F"], "C", "UK"),
        (["C"], "F", "DE"),        # F has no DE title: not a training pair
    ]
    tests = {3: [(["A", "B", "C", "D"], "DE"), (["C", "A", "C"], "DE"), (["F"], "DE"), (["C", "F"], "UK")]}
    return M2Data(write_m2_folder(tmp_path / "toy", products, sessions, tests), cache_dir=cache_dir)


def test_sources_most_recent_first_with_locale_tag_k_and_dedupe(toy):
    test = toy.test(3)
    assert session_sources(toy.catalog, test, k=2) == [
        "<DE> Marke D Kabel, Rot <sep> Marke C Kabel, Rot",
        "<DE> Marke C Kabel, Rot <sep> Marke A Kabel, Rot",   # C viewed twice: its latest view only
        "<DE>",                                               # F is not sold in DE
        "<UK> uk F <sep> uk C",
    ]
    assert session_sources(toy.catalog, test, k=1)[0] == "<DE> Marke D Kabel, Rot"
    assert session_sources(toy.catalog, test, k=3, dedupe=False)[1] == (
        "<DE> Marke C Kabel, Rot <sep> Marke A Kabel, Rot <sep> Marke C Kabel, Rot")
    with_brand = session_sources(toy.catalog, test.select([0]), k=3, attributes=("title", "brand"))[0]
    assert with_brand == "<DE> Marke D Kabel, Rot <sep> Marke C Kabel, Rot <sep> Marke B Kabel, Blau | brand Acme"


def test_training_pairs_skip_sessions_without_titles(toy):
    sources, targets, locales, titles, drafts = training_pairs(toy.catalog, toy.train, k=3)
    assert sources == ["<DE> Marke B Kabel, Blau <sep> Marke A Kabel, Rot", "<DE> Marke A Kabel, Rot", "<UK> uk F"]
    assert targets == ["Marke C Kabel, Rot", "Marke D Kabel, Rot", "uk C"]
    assert locales == ["DE", "DE", "UK"]
    assert titles == [["Marke B Kabel, Blau", "Marke A Kabel, Rot"], ["Marke A Kabel, Rot"], ["uk F"]]
    assert drafts == [[], [], []]        # none asked for
    assert [source_titles(s) for s in sources] == titles


def test_edit_scripts_round_trip():
    titles = ["Acme Pro Kabel, 2 m, Rot", "Zeta Lampe 1,8 m, Weiß"]
    cases = {
        "Acme Pro Kabel, 1 m, Rot": "<t1> <r> 2 <w> 1",
        "Zeta Lampe 1,8 m, Schwarz": "<t2> <r> Weiß <w> Schwarz",     # the best-aligned title; 1,8 is one word
        "Acme Pro Kabel, 2 m, Rot, 2er Pack": "<t1> <r> Rot <w> Rot , 2er Pack",  # insertions anchor on a word
        "Neu Acme Pro Kabel, 2 m, Rot": "<t1> <r> Acme <w> Neu Acme",
        "Acme Pro Kabel, 2 m": "<t1> <r> , Rot <w>",
        "Acme Pro Kabel, 2 m, Rot": "<t1>",
        "Acme Kabel, 2 m, 2 m": "<t1> <r> Pro <w> <r> Rot <w> 2 m",
    }
    for target, script in cases.items():
        assert encode_edit(target, titles) == script and decode_edit(script, titles) == target
    repeated = encode_edit("Kabel, 2 m, Rot, 2 m, Blau", ["Kabel, 2 m, Rot, 2 m, Rot"])
    assert repeated == "<t1> <r> Rot , 2 m , Rot <w> Rot , 2 m , Blau"  # widened until the match is unique
    # Decoding is forgiving: no spaces around codes, unknown old words skipped, no codes = the last title.
    assert decode_edit("<t1><r>2<w>3<r>Gelb<w>Blau", titles) == "Acme Pro Kabel, 3 m, Rot"
    assert decode_edit("free text", titles) == titles[0] and decode_edit("<t9> <r> x <w> y", titles) == "x y"
    assert copy_share("Acme Pro Kabel, 1 m, Rot", titles) == pytest.approx(7 / 8)
    assert copy_share("Neu", titles) == 0.0 and copy_share("Neu", []) == 0.0


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    from recformer_m2.synth import generate

    folder = tmp_path_factory.mktemp("synth")
    generate(folder / "data", "tiny", 0, style="classic")  # a vocab_size=500 tokenizer fits classic's characters
    return M2Data(folder / "data", cache_dir=folder / "cache")


@pytest.fixture(scope="module")
def tokenizer(synth_data, tmp_path_factory):
    tok = train_tokenizer(synth_data.catalog.table["title"].tolist(), tmp_path_factory.mktemp("tok"), vocab_size=500)
    ensure_tokens(tok)
    return tok


def test_edit_scripts_start_from_a_draft_when_it_aligns_better():
    titles, drafts = ["Acme Kabel, 2 m, Rot"], ["Acme Kabel, 2 m, Blau", "Acme Kabel, 3 m, Rot"]
    cases = {
        "Acme Kabel, 2 m, Blau": "<d1>",
        "Acme Kabel, 3 m, Blau": "<d1> <r> 2 <w> 3",      # ties: the first draft
        "Acme Kabel, 3 m, Rot": "<d2>",
        "Acme Kabel, 2 m, Rot, 2er Pack": "<t1> <r> Rot <w> Rot , 2er Pack",  # ties: titles before drafts
    }
    for target, script in cases.items():
        assert encode_edit(target, titles, drafts) == script and decode_edit(script, titles, drafts) == target
    assert decode_edit("<d3> <r> 2 <w> 3", titles, drafts) == "Acme Kabel, 3 m, Rot"   # no such draft: title 1
    assert decode_edit("<d1>", titles) == titles[0]
    assert gated_script([("<d1>", 0.6), ("<r> 2 <w> 3", 0.2)], 0.5) == "<d1>"
    assert gated_script([("<d1>", 0.6)], 0.7) == "<t1>"      # unsure of the draft: copy the last title
    with pytest.raises(ValueError, match="drafts"):
        TitleConfig(drafts=2, target_format="title")


def test_draft_bias_favours_only_the_drafts_a_source_holds_at_the_first_step():
    bias = DraftBias([5, 6], 3.0, held=torch.tensor([0, 1, 2]))
    start = torch.zeros(3, 1, dtype=torch.long)
    out = bias(start, torch.zeros(3, 10))
    assert out[0].eq(0).all() and out[1, 5] == 3 and out[1, 6] == 0 and out[2, 5] == out[2, 6] == 3
    assert out[:, [0, 1, 2, 3, 4, 7, 8, 9]].eq(0).all()
    assert bias(torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, 10)).eq(0).all()   # later steps untouched
    beams = bias(torch.zeros(6, 1, dtype=torch.long), torch.zeros(6, 10))           # two beams per source
    assert beams[:, 5].tolist() == [0, 0, 3, 3, 3, 3] and beams[:, 6].tolist() == [0, 0, 0, 0, 3, 3]


def test_truncation_keeps_the_locale_tag_and_most_recent_title(tokenizer):
    collator = PairCollator(tokenizer, max_source_length=8, max_target_length=5)
    source = "<DE> Marke Kabel Rot Blau Grün <sep> " + "Marke Kabel Gelb " * 10
    src, tgt = collator.encode([source], ["Marke Kabel Rot Blau Grün Gelb Weiß"])
    assert len(src[0]) == 8 and len(tgt[0]) == 5
    assert src[0][0] == tokenizer.convert_tokens_to_ids("<DE>") and src[0][-1] == tokenizer.eos_token_id
    batch = collator([(src[0], tgt[0]), (src[0][:3], tgt[0][:2])])
    assert batch["input_ids"].shape == (2, 8) and batch["attention_mask"][1].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert batch["labels"][1].tolist() == tgt[0][:2] + [-100] * 3


def test_bucket_batches_cover_every_pair_once_and_are_seeded():
    lengths = list(np.random.default_rng(0).integers(1, 50, 103))
    batches = list(BucketBatches(lengths, 10, seed=1, pool=3))
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert batches == list(BucketBatches(lengths, 10, seed=1, pool=3))


TINY = dict(model_size="tiny", k=2, min_copy_share=0.3, batch_size=16, lr=3e-3, warmup_steps=5,
            max_steps=40, eval_every=20, max_minutes=None, val_bleu_samples=8, heldout_products=0.1, max_new_tokens=12,
            progress=False)


@pytest.fixture(scope="module")
def trained(synth_data, tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("titles")
    tokenizer.save_pretrained(out / "tok")
    config = TitleConfig(**TINY, drafts=2, tokenizer=str(out / "tok"))
    return fit_title_model(synth_data.catalog, synth_data.train, out / "model", config), out / "model"


def test_training_lowers_the_loss_and_records_metrics(trained):
    _, folder = trained
    log = pd.read_csv(next((folder / "logs").glob("*/metrics.csv")))
    losses = log["train_loss"].dropna().to_numpy()
    assert len(losses) >= 2 and losses[-1] < losses[0]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["global_step"] == TINY["max_steps"] and "val_bleu" in metrics
    assert metrics["draft_bias"] in TitleConfig().draft_bias_grid and metrics["edit_gate"] in TitleConfig().gate_grid
    saved = json.loads((folder / "title_config.json").read_text())
    assert (saved["drafts"], saved["draft_bias"], saved["edit_gate"]) == (2, metrics["draft_bias"], metrics["edit_gate"])
    assert (folder / "checkpoints" / "last.ckpt").exists()


def test_generate_one_title_per_session_and_round_trip(trained, synth_data):
    generator, folder = trained
    sessions = synth_data.test(3)
    titles = generator.generate(sessions, batch_size=7, progress=False)
    assert len(titles) == len(sessions) and all(isinstance(t, str) for t in titles)
    loaded = TitleGenerator.from_pretrained(folder).fit(synth_data.catalog)
    assert loaded.generate(sessions, progress=False) == titles
    beams = TitleGenerator.from_pretrained(folder, num_beams=3, no_repeat_ngram_size=2).fit(synth_data.catalog)
    assert len(beams.generate(sessions.select(np.arange(5)), progress=False)) == 5


def test_from_pretrained_refuses_a_folder_missing_weights(trained, tmp_path):
    _, folder = trained
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    from safetensors.torch import load_file, save_file

    weights = load_file(broken / "model.safetensors")
    dropped = next(k for k in weights if "encoder.block.0" in k)
    del weights[dropped]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="missing"):
        TitleGenerator.from_pretrained(broken)
    with pytest.raises(FileNotFoundError):
        TitleGenerator.from_pretrained(tmp_path)


class _SimulatedCrash(Exception):
    """Raised right after the first ``last.ckpt`` is written, as if the run were killed there."""


def test_crash_after_last_checkpoint_resumes_and_matches_an_uninterrupted_run(trained, synth_data, tmp_path,
                                                                              monkeypatch, caplog):
    """The run dies right after its first ``last.ckpt`` (step 20 of 40); the rerun resumes from it (the log
    says so, and its CSV log starts past that step) and ends with the uninterrupted run's weights and
    metrics. With resuming off the rerun starts at step 0 and this fails."""
    import lightning as L
    from safetensors.torch import load_file

    _, folder = trained
    config = TitleConfig(**TINY, drafts=2, tokenizer=str(folder.parent / "tok"))
    out = tmp_path / "crashy"
    real_save = L.Trainer.save_checkpoint

    def crash_after_first_last(self, filepath, *args, **kwargs):
        real_save(self, filepath, *args, **kwargs)
        if Path(filepath).name == "last.ckpt":
            raise _SimulatedCrash(filepath)

    monkeypatch.setattr(L.Trainer, "save_checkpoint", crash_after_first_last)
    with pytest.raises(_SimulatedCrash):
        fit_title_model(synth_data.catalog, synth_data.train, out, config)
    monkeypatch.setattr(L.Trainer, "save_checkpoint", real_save)
    crashed_at = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 0 < crashed_at < TINY["max_steps"]
    with caplog.at_level("INFO", logger="recformer_m2.titles.train"):
        fit_title_model(synth_data.catalog, synth_data.train, out, config)
    assert "resuming from" in caplog.text
    logs = sorted((out / "logs").glob("version_*/metrics.csv"))
    assert len(logs) == 2 and pd.read_csv(logs[1])["step"].min() >= crashed_at  # the rerun trained on from there
    resumed, full = (json.loads((f / "metrics.json").read_text()) for f in (out, folder))
    resumed.pop("train_seconds"), full.pop("train_seconds")
    assert resumed == full
    a, b = load_file(out / "model.safetensors"), load_file(folder / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_min_copy_share_filters_training_pairs_only(synth_data, monkeypatch, tmp_path):
    """Validation is never filtered by its labels: ``continued_lines`` (which reads the targets) sees the
    training pairs alone, and model selection still gets its validation pairs."""
    from recformer_m2.titles import train as title_train

    seen = []
    real = title_train.continued_lines

    def record(pairs, config):
        seen.append(len(pairs.sources))
        return real(pairs, config)

    class _Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise _Stop

    monkeypatch.setattr(title_train, "continued_lines", record)
    monkeypatch.setattr(title_train, "title_tokenizer", stop)  # the pairs are all this test needs
    config = TitleConfig(**TINY, drafts=0)
    with pytest.raises(_Stop):
        fit_title_model(synth_data.catalog, synth_data.train, tmp_path, config)
    assert len(seen) == 1


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_lora_builds_and_trains_one_step(tokenizer):
    config = TitleConfig(model_size="tiny", lora_r=4, lora_target_modules=("q", "v"))
    model = add_lora(scratch_model(config, tokenizer), config, new_token_ids=[len(tokenizer) - 1])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "token_adapter" in n for n in trainable)
    module = TitleModule(model, tokenizer, config)
    optimizer = module.configure_optimizers()["optimizer"]
    collator = PairCollator(tokenizer, 16, 8)
    batch = collator(list(zip(*collator.encode(["<DE> Marke Kabel Rot"] * 2, ["Marke Kabel Blau"] * 2))))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    module.training_step(batch, 0).backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert changed and changed <= trainable


def test_init_from_a_local_mt5_folder_with_lora(synth_data, tmp_path):
    from transformers import MT5Config, MT5ForConditionalGeneration

    base = train_tokenizer(synth_data.catalog.table["title"].tolist(), tmp_path / "mt5", vocab_size=500)
    config = MT5Config(vocab_size=len(base), tie_word_embeddings=False, decoder_start_token_id=0, d_model=16,
                       d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=8)
    MT5ForConditionalGeneration(config).save_pretrained(tmp_path / "mt5")  # stands in for a real mT5 checkpoint
    titles = TitleConfig(**{**TINY, "max_steps": 2, "eval_every": 2, "val_bleu_samples": 0},
                         init=str(tmp_path / "mt5"), lora_r=2)
    generator = fit_title_model(synth_data.catalog, synth_data.train, tmp_path / "out", titles)
    assert generator.model.get_input_embeddings().num_embeddings > len(base)  # locale tags and edit codes added
    assert not any("lora" in name for name in generator.model.state_dict())   # adapters merged before saving
    loaded = TitleGenerator.from_pretrained(tmp_path / "out").fit(synth_data.catalog)
    sessions = synth_data.test(3).select(np.arange(4))
    assert loaded.generate(sessions, progress=False) == generator.generate(sessions, progress=False)


def test_trim_drops_words_that_rarely_survive():
    survival = WordSurvival(prior_weight=0.0).fit(
        ["Acme Kabel Rot", "Acme Kabel Blau", "Acme Kabel Rot"],
        ["Acme Kabel Blau", "Acme Kabel Blau XL", "Acme Kabel Grün"],
        np.array([DE, DE, DE]),
    )
    assert survival.rate(DE, "Acme") == 1.0 and survival.rate(DE, "Rot") == 0.0 and survival.rate(DE, "Blau") == 1.0
    assert trim("Acme Kabel Rot", DE, survival, 0.5) == "Acme Kabel"
    assert trim("Acme Kabel Rot", DE, survival, 0.0) == "Acme Kabel Rot"
    assert survival.rate(DE, "Neu") == pytest.approx(7 / 9)  # unseen: the locale's rate (7 of 9 words kept)
    assert survival.words_rate(DE, ["Rot", "Acme"]) == 1.0 and survival.words_rate(DE, []) == 1.0
    again = WordSurvival.from_dict(json.loads(json.dumps(survival.to_dict())))
    assert again.rate(DE, "Rot") == 0.0 and again.rate(DE, "Neu") == pytest.approx(7 / 9)


def test_trimmed_title_tunes_on_training_sessions_and_matches_last_title_untrimmed(synth_data):
    catalog, train, test = synth_data.catalog, synth_data.train, synth_data.test(3)
    tuned = TrimmedTitle(grid=(0.0, 0.3)).fit(catalog, train)
    assert tuned.min_rate in (0.0, 0.3) and set(tuned.tuning) == {0.0, 0.3}
    untrimmed = TrimmedTitle(min_rate=0.0).fit(catalog, train)
    assert untrimmed.generate(test) == LastTitle().fit(catalog, train).generate(test) == last_titles(catalog, test)


def test_heldout_product_split_keeps_validation_products_out_of_training(synth_data):
    train = synth_data.train
    fit_idx, valid_idx = heldout_product_split(train, 0.1, seed=0)
    assert len(valid_idx) > 0 and len(fit_idx) > len(valid_idx) and not set(fit_idx) & set(valid_idx)
    fit, valid = train.select(fit_idx), train.select(valid_idx)
    taught = set(fit.items.tolist()) | set(fit.next_item.tolist())
    assert not set(valid.next_item.tolist()) & taught                   # new to the model, as task-3 titles are
    assert not set(valid.next_item.tolist()) & set(valid.items.tolist())
    again = heldout_product_split(train, 0.1, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, (fit_idx, valid_idx)))
    capped = heldout_product_split(train, 0.1, seed=0, max_per_locale=1)[1]
    assert len(capped) <= len(LOCALES) and set(capped) <= set(valid_idx)


def test_sample_k_cuts_sources_and_titles_alike():
    sources = ["<DE> a <sep> b <sep> c"] * 50
    pairs = TitlePairs(sources, ["t"] * 50, ["DE"] * 50, [["a", "b", "c"]] * 50, [[]] * 50)
    cut = sample_k(pairs, (1, 3), seed=0)
    assert set(cut.sources) == {"<DE> a", "<DE> a <sep> b <sep> c"}
    assert [source_titles(s) for s in cut.sources] == cut.titles and cut.targets == pairs.targets
    assert sample_k(pairs, (1, 3), seed=0) == cut


def test_candidates_that_repeat_a_catalog_title_are_passed_over():
    config = TitleConfig(num_beams=3, num_candidates=3)
    titles = [["Acme Kabel 1 m, Rot", "Acme Kabel 2 m, Blau"]]
    outputs = [["<t1> <r> Rot <w> Blau", "<t1> <r> 1 <w> 3", "<t1>"]]
    assert to_titles(outputs, titles, config) == ["Acme Kabel 1 m, Blau"]
    assert to_titles(outputs, titles, config, [{"Acme Kabel 1 m, Blau"}]) == ["Acme Kabel 3 m, Rot"]
    everything = {"Acme Kabel 1 m, Blau", "Acme Kabel 3 m, Rot", "Acme Kabel 1 m, Rot"}
    assert to_titles(outputs, titles, config, [everything]) == ["Acme Kabel 1 m, Blau"]  # none new: the best
    with pytest.raises(ValueError, match="num_candidates"):
        TitleConfig(num_beams=2, num_candidates=3)


def test_title_stage_scores_every_k_and_reuses_a_finished_model(synth_data, tokenizer, tmp_path):
    from recformer_m2.titles.ablation import title_stage

    tokenizer.save_pretrained(tmp_path / "tok")
    config = TitleConfig(**{**TINY, "max_steps": 6, "eval_every": 6, "val_bleu_samples": 0},
                         tokenizer=str(tmp_path / "tok"))
    test = synth_data.test(3)
    targets = synth_data.truth(3)["next_item_title"].fillna("").tolist()
    result = title_stage(synth_data, synth_data.train, test, targets, tmp_path / "stage", config, ks=(1, 2, 3))
    table = result.table
    assert list(table.columns) == ["locale", "method", "BLEU", "n"]   # as the pipeline's title tables
    assert list(table["method"].unique()) == ["mt5 (K=1)", "mt5 (K=2)", "mt5 (K=3)"]
    assert set(table["locale"]) == {*LOCALES, "overall"}
    overall = table[table["locale"] == "overall"]
    assert (overall["n"] == len(test)).all() and overall["BLEU"].between(0, 1).all()
    assert list(result.examples.columns) == ["locale", "last title", "generated", "truth"]
    assert 0 < len(result.examples) <= 2 * len(LOCALES)
    assert result.titles_per_second > 0 and result.train_seconds > 0
    saved = json.loads((tmp_path / "stage" / "title_config.json").read_text())
    assert saved["train_ks"] == [1, 2, 3] and saved["k"] == 3
    again = title_stage(synth_data, synth_data.train, test, targets, tmp_path / "stage", config, ks=(1, 2, 3))
    assert again.train_seconds == result.train_seconds       # reused, not retrained
    pd.testing.assert_frame_equal(again.table, table)
    with pytest.raises(ValueError, match="lr"):
        title_stage(synth_data, synth_data.train, test, targets, tmp_path / "stage",
                    TitleConfig(**{**TINY, "lr": 1e-3}, tokenizer=str(tmp_path / "tok")), ks=(1, 2, 3))


def test_siblings_are_other_variants_of_the_line_and_never_the_target(tmp_path, cache_dir):
    products = [("A", "DE", "Acme Pro Kabel 1 m, Rot"), ("B", "DE", "Acme Pro Kabel 2 m, Rot"),
                ("C", "DE", "Acme Pro Kabel 1 m, Blau"), ("D", "DE", "Zeta Lampe Weiß"),
                ("E", "DE", "Acme Neo Lampe, Grün"), ("F", "UK", "Acme Pro Cable 1 m, Red")]
    data = M2Data(write_m2_folder(tmp_path / "d", products, [(["D", "A"], "B", "DE"), (["A"], "C", "DE")]),
                  cache_dir=cache_dir)
    siblings = SiblingTitles(data.catalog)
    # same line (Jaccard 0.75, ties in catalog order); another brand's, another line's and another locale's not
    assert siblings.find("Acme Pro Kabel 1 m, Rot", "DE", 5) == ["Acme Pro Kabel 2 m, Rot", "Acme Pro Kabel 1 m, Blau"]
    assert siblings.find("Acme Pro Kabel 1 m, Rot", "DE", 1, exclude={"Acme Pro Kabel 2 m, Rot"}) == [
        "Acme Pro Kabel 1 m, Blau"]
    pairs = training_pairs(data.catalog, data.train, k=2, siblings=siblings, n_siblings=3)
    sources, titles = pairs.sources, pairs.titles
    assert sources == ["<DE> Acme Pro Kabel 1 m, Rot <sep> Zeta Lampe Weiß <sib> Acme Pro Kabel 1 m, Blau",
                       "<DE> Acme Pro Kabel 1 m, Rot <sib> Acme Pro Kabel 2 m, Rot"]   # each target left out
    assert [source_titles(s) for s in sources] == titles
    cut = sample_k(pairs, (1,), seed=0)
    assert cut.sources[0] == "<DE> Acme Pro Kabel 1 m, Rot <sib> Acme Pro Kabel 1 m, Blau"


def test_edit_gate_keeps_only_sure_replacements_weighed_by_word_survival():
    segments = [("<t2>", 0.9), ("<r> Rot <w> Blau", 0.8), ("<r> 1 <w> 3", 0.3)]
    assert gated_script(segments, 0.0) == "<t2> <r> Rot <w> Blau <r> 1 <w> 3"
    assert gated_script(segments, 0.5) == "<t2> <r> Rot <w> Blau"
    assert gated_script(segments, 0.85) == "<t2>"
    assert gated_script(segments, 0.95) == "<t1>"       # unsure of the title: copy the last one
    assert gated_script([], 0.5) == gated_script([("Rot", 1.0)], 0.5) == "<t1>"
    rarely_kept = {"1": 0.1, "Rot": 0.9}                # a variant number rarely survives: replacing it is cheap
    survival = lambda words: max(rarely_kept[w] for w in words)  # noqa: E731
    assert gated_script(segments, 0.5, survival) == "<t2> <r> Rot <w> Blau <r> 1 <w> 3"
    assert gated_script([("<t1>", 0.4), ("<r> 1 <w> 3", 0.3)], 2.0, survival) == "<t1> <r> 1 <w> 3"
    assert gated_script([("<t1>", 0.4), ("<r> 1 <w> 3", 0.3)], 1000.0, survival) == "<t1>"


def test_examples_show_changed_titles_first_and_cover_every_locale():
    from recformer_m2.titles.ablation import pick_examples

    locales = ["DE"] * 5 + ["UK"] * 2
    last = list("abcdefg")
    generated = ["a", "B", "c", "d", "e", "f", "g"]
    examples = pick_examples(last, generated, list("abcdefg"), locales, per_locale=2, seed=0)
    assert examples["locale"].tolist() == ["UK", "UK", "DE", "DE"]
    assert "B" in examples["generated"].tolist()
    assert examples.equals(pick_examples(last, generated, list("abcdefg"), locales, per_locale=2, seed=0))
