"""The main job's driver on tiny synthetic data: tables, plots, report and stage timings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from recformer_m2.pipeline import PipelineConfig, StageClock, run_pipeline

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def heuristics_run(tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame]]:
    out = tmp_path_factory.mktemp("pipeline") / "out"
    config = PipelineConfig(out=str(out), scale="tiny", methods=["popularity", "covisitation"],
                            title_methods=["last-title"], stages=[])
    return out, run_pipeline(config)


def test_heuristics_only_run_writes_tables_plots_and_report(heuristics_run):
    out, results = heuristics_run
    for name in ("task1", "task2", "task3", "timing"):
        assert (out / f"results_{name}.csv").exists()
    for plot in ("task1_mrr", "task2_mrr", "task3_bleu"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "Task 2: next product, ES/FR/IT" in report and "Wall-clock time per stage" in report


def test_tables_hold_every_locale_of_their_task_and_metrics_in_range(heuristics_run):
    _, results = heuristics_run
    for task, locales in ((1, {"UK", "DE", "JP"}), (2, {"ES", "FR", "IT"})):
        table = results[f"task{task}"]
        assert set(table["method"]) == {"popularity", "covisitation"}
        assert locales | {"overall"} <= set(table["locale"])
        assert table["MRR@100"].between(0, 1).all() and table["Recall@100"].between(0, 1).all()
        # MRR can never exceed recall at the same cut-off.
        assert (table["MRR@100"] <= table["Recall@100"] + 1e-12).all()
    assert set(results["task3"]["method"]) == {"last-title"}


def test_methods_are_compared_with_the_best_simple_method(heuristics_run):
    out, results = heuristics_run
    for task in (1, 2):
        versus = results[f"task{task}_vs_simple"]
        table = results[f"task{task}"].set_index(["method", "locale"])["MRR@100"]
        best = max(("popularity", "covisitation"), key=lambda m: table[(m, "overall")])
        other = "popularity" if best == "covisitation" else "covisitation"
        row = versus.set_index("method").loc[other]
        assert row["versus"] == best and len(versus) == 1
        # the difference is the tables' difference, inside its own bootstrap interval
        assert row["difference"] == pytest.approx(table[(other, "overall")] - table[(best, "overall")], abs=1e-9)
        assert row["low"] <= row["difference"] <= row["high"] and 0 <= row["share_better"] <= 1
    assert results["task3_vs_simple"].empty  # one title method: nothing to compare
    assert "Against the strongest simple method" in (out / "report.md").read_text()


def task_headings(report: str) -> list[str]:
    """The report's task-table headings (main data and every style)."""
    return [line for line in report.splitlines() if line.startswith("#") and line.lstrip("# ").startswith("Task ")]


def test_every_score_table_names_its_split(heuristics_run):
    out, results = heuristics_run
    report = (out / "report.md").read_text()
    headings = task_headings(report)
    assert len(headings) == 3 and all("(test split: test file, task" in line for line in headings)
    comparisons = [line for line in report.splitlines() if line.startswith("Against the strongest simple method")]
    assert len(comparisons) == 2 and all("same test sessions" in line for line in comparisons)
    for name in ("task1", "task2", "task3", "task1_vs_simple", "task2_vs_simple", "task3_vs_simple"):
        table = pd.read_csv(out / f"results_{name}.csv")
        assert "split" in table.columns and set(table["split"]) <= {"test"}
        assert len(table) == 0 or set(table["split"]) == {"test"}


def test_a_folder_without_ground_truth_is_scored_on_validation_and_says_so(heuristics_run, tmp_path):
    out, _ = heuristics_run
    folder = tmp_path / "no-truth"
    shutil.copytree(out / "data", folder, ignore=shutil.ignore_patterns("gt_task*"))
    results = run_pipeline(PipelineConfig(out=str(tmp_path / "run"), data=str(folder), methods=["popularity"],
                                          title_methods=["last-title"], stages=["baselines"]))
    for task in (1, 2, 3):
        assert set(results[f"task{task}"]["split"]) == {"validation"}
    report = (tmp_path / "run" / "report.md").read_text()
    headings = task_headings(report)
    assert len(headings) == 3 and all("(validation split: validation split of sessions_train" in h for h in headings)
    assert "test split" not in report
    # the trained stage cannot run without a test file's truth, and the report says so
    assert "## Skipped" in report and "stage `baselines`" in report and "no ground truth" in report


def test_styles_add_one_world_per_style_with_its_own_tables(heuristics_run, tmp_path, monkeypatch):
    from recformer_m2 import synth

    out, _ = heuristics_run
    made = []

    def styled(folder, scale, seed, style=None):  # stands in for the generator: copies the tiny data
        made.append((style, scale, seed))
        shutil.copytree(out / "data", folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("synth.json"))
        return {"style": style}

    monkeypatch.setattr(synth, "generate", styled)
    config = PipelineConfig(out=str(tmp_path / "run"), data=str(out / "data"), scale="tiny", seed=3,
                            methods=["popularity", "covisitation"], title_methods=["last-title"], stages=[],
                            styles=["plain", "noisy"])
    results = run_pipeline(config)
    assert made == [("plain", "tiny", 3), ("noisy", "tiny", 3)]
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"(synthetic: style `{synth.DEFAULT_STYLE}`, scale `tiny`, seed 0)" in report.splitlines()[2]
    for style in ("plain", "noisy"):
        section = report.split(f"## Generator style `{style}`")[1].split("\n## ")[0]
        headings = task_headings(section)
        assert len(headings) == 3 and all("(test split:" in line for line in headings)
        table = pd.read_csv(tmp_path / "run" / f"results_style-{style}_task2.csv")
        assert set(table["method"]) == {"popularity", "covisitation"} and set(table["split"]) == {"test"}
        assert (tmp_path / "run" / f"results_style-{style}_task3.csv").exists()
        assert f"style {style}: heuristics" in set(results["timing"]["stage"])
    # a second run finds both worlds generated with the same scale, seed and style and reuses them
    run_pipeline(config)
    assert len(made) == 2


def test_a_generator_without_styles_is_a_clear_error(tmp_path, monkeypatch):
    from recformer_m2 import pipeline, synth

    monkeypatch.setattr(synth, "generate", lambda folder, scale, seed: {})
    with pytest.raises(ValueError, match="style 'noisy' asked for, but .* has no styles"):
        pipeline.ensure_synthetic(tmp_path / "data", "tiny", 0, style="noisy")


def test_synthetic_data_is_remade_when_the_default_style_is_not_the_one_it_was_made_with(tmp_path, monkeypatch):
    from recformer_m2 import pipeline, synth

    made = []
    monkeypatch.setattr(synth, "generate", lambda folder, scale, seed, style=None: made.append(style) or {})
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "synth.json").write_text(json.dumps({"scale": "tiny", "seed": 0}))  # made before styles existed
    pipeline.ensure_synthetic(folder, "tiny", 0)
    pipeline.ensure_synthetic(folder, "tiny", 0)  # now recorded by name: reused
    pipeline.ensure_synthetic(folder, "tiny", 0, style="classic")
    assert made == [synth.DEFAULT_STYLE, "classic"]
    assert json.loads((folder / "synth.json").read_text())["style"] == "classic"


@pytest.mark.parametrize("emptied", ["missing", "blank"])
def test_an_id_only_folder_runs_the_id_methods_and_notes_the_skipped_text_ones(heuristics_run, tmp_path, emptied):
    """Without product text (products_train missing, or every attribute empty) the id methods and the ID
    baselines run; textknn, the Recformer and title stages and task 3 are skipped, each with a note."""
    out, _ = heuristics_run
    folder = tmp_path / "ids"
    shutil.copytree(out / "data", folder, ignore=shutil.ignore_patterns("synth.json", "gt_task3*", "*task3*"))
    products = folder / "products_train.csv"
    if emptied == "missing":
        products.unlink()
    else:
        table = pd.read_csv(products, dtype=str, keep_default_na=False)
        table[[c for c in table.columns if c not in ("id", "locale", "price")]] = ""
        table.to_csv(products, index=False)
    stages = ["recformer", "baselines", "titles"] if emptied == "missing" else []
    config = PipelineConfig(out=str(tmp_path / "run"), data=str(folder),
                            methods=["popularity", "covisitation", "textknn", "hybrid"], stages=stages,
                            baseline_models=["stamp"], baseline_budget_seconds=10, hybrid_with_models=False)
    results = run_pipeline(config)
    for task in (1, 2):
        methods = set(results[f"task{task}"]["method"])
        assert "textknn" not in methods and {"popularity", "covisitation", "hybrid"} <= methods
        assert (results[f"task{task}"]["MRR@100"] > 0).any()
    assert "task3" not in results and not (tmp_path / "run" / "results_task3.csv").exists()
    report = (tmp_path / "run" / "report.md").read_text()
    skipped = report.split("## Skipped")[1].split("\n## ")[0]
    assert "textknn (tasks 1, 2)" in skipped and "task 3 (every title method)" in skipped
    if stages:
        assert "stage `recformer`" in skipped and "stage `titles`" in skipped and "stage `baselines`" not in skipped
        assert any(m.startswith("stamp") for m in results["task1"]["method"])
        assert not (tmp_path / "run" / "pretrain").exists() and not (tmp_path / "run" / "titles").exists()
    assert len(task_headings(report)) == 2


def test_timing_table_sums_its_stages(heuristics_run):
    _, results = heuristics_run
    timing = results["timing"].set_index("stage")["seconds"]
    assert timing["total"] == pytest.approx(timing.drop("total").sum(), abs=0.2)
    assert {"data", "task 1: fit and score", "task 2: fit and score"} <= set(timing.index)


def test_unknown_stage_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown stage"):
        run_pipeline(PipelineConfig(out=str(tmp_path), scale="tiny", stages=["bert4rec"]))


def test_stage_clock_accumulates_and_survives_errors():
    clock = StageClock()
    with clock("a"):
        pass
    with pytest.raises(RuntimeError), clock("a"):
        raise RuntimeError("boom")
    assert list(clock.seconds) == ["a"] and clock.total() >= 0


def test_cli_pipeline_prints_the_task_tables_and_timing(tmp_path, capsys):
    from recformer_m2.cli import main

    main(["pipeline", "--out", str(tmp_path / "out"), "--scale", "tiny", "--methods", "popularity", "--stages", ""])
    printed = capsys.readouterr().out
    assert "== task2 ==" in printed and "== wall-clock seconds per stage ==" in printed and "report:" in printed


@pytest.mark.parametrize("flag, value, name, parsed", [
    ("--transfer-fractions", "0.1,0.25", "transfer_fractions", [0.1, 0.25]),
    ("--styles", "plain,noisy", "styles", ["plain", "noisy"]),
])
def test_cli_pipeline_passes_list_options_on_and_they_are_off_by_default(tmp_path, monkeypatch, flag, value, name,
                                                                         parsed):
    from recformer_m2 import cli, pipeline

    seen = {}

    def capture(config):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(pipeline, "run_pipeline", capture)
    with pytest.raises(SystemExit):
        cli.main(["pipeline", "--out", str(tmp_path), flag, value])
    assert getattr(seen["config"], name) == parsed
    assert getattr(PipelineConfig(), name) == []  # off in the main job: its time unchanged


def test_cli_pipeline_passes_the_stage0_fraction_on(tmp_path, monkeypatch):
    from recformer_m2 import cli, pipeline

    seen = {}

    def capture(config):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(pipeline, "run_pipeline", capture)
    with pytest.raises(SystemExit):
        cli.main(["pipeline", "--out", str(tmp_path), "--stage0-fraction", "0.1"])
    assert seen["config"].stage0_fraction == 0.1
    with pytest.raises(SystemExit):
        cli.main(["pipeline", "--out", str(tmp_path)])
    assert seen["config"].stage0_fraction == PipelineConfig().stage0_fraction == 0  # off: the main job's time


@pytest.mark.slow
def test_recformer_stage_finetunes_from_scratch_beside_pretraining(heuristics_run, tmp_path, monkeypatch):
    """The supervised finetuning runs in a second process; both finetuned models and the pretrained one come
    back, and a second call finds everything done and trains nothing."""
    from recformer_m2 import pipeline

    out, _ = heuristics_run
    finetune_config = tmp_path / "finetune_tiny_cross.json"
    finetune_config.write_text(json.dumps({**json.loads((REPO / "finetune/configs/tiny.json").read_text()),
                                           "cross_locale": True}))
    config = PipelineConfig(pretrain_config="pretrain/configs/tiny.json", finetune_config=str(finetune_config),
                            transfer_fractions=[0.5], stage0_fraction=0.5)
    assert config.parallel_finetune
    rows = pipeline.train_recformer(out / "data", tmp_path, config)
    assert set(rows[2]) == {"recformer (zero-shot)", "recformer (supervised)", "recformer (pretrained+ft)",
                            "recformer (supervised, model alone)", "recformer (pretrained+ft, model alone)",
                            "recformer (supervised, 50% data)", "recformer (pretrained+ft, 50% data)"}
    assert rows[2]["recformer (supervised, model alone)"] == ("recformer-alone", tmp_path / "finetune-supervised" / "best")
    # stage 0: the pretrained model finetuned on half of the UK/DE/JP sessions, one stage, no fusion; the
    # ES/FR/IT finetuning starts from it, and it is task 1's Recformer row
    stage0 = json.loads((tmp_path / "stage0" / "finetune_config.json").read_text())
    assert (stage0["task"], stage0["train_fraction"], stage0["stage2_epochs"], stage0["lexical_grid"]) == (1, 0.5, 0, [])
    # task 1's cross-locale sessions would be the ES/FR/IT sessions the later finetuning validates on
    assert stage0["cross_locale"] is False
    assert json.loads((tmp_path / "finetune-stage0" / "finetune_config.json").read_text())["cross_locale"] is True
    assert rows[1] == {"recformer (pretrained+stage 0)": ("recformer", tmp_path / "stage0" / "best")}
    for run in ("finetune-supervised", "finetune-stage0", "finetune-supervised-50pct", "finetune-stage0-50pct"):
        assert (tmp_path / run / "done").exists() and (tmp_path / run / "best" / "model.safetensors").exists()
    assert json.loads((tmp_path / "finetune-stage0-50pct" / "finetune_config.json").read_text())["train_fraction"] == 0.5
    assert pipeline.transfer_models(2, rows[2]) == [tmp_path / "finetune-stage0" / "best"]  # curve rows not fused
    assert "finetuning done" in (tmp_path / "finetune-supervised" / "finetune.log").read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished stage trained again")

    monkeypatch.setattr("subprocess.Popen", no_training)
    monkeypatch.setattr("subprocess.run", no_training)
    monkeypatch.setattr("recformer_m2.finetuning.run_finetuning", no_training)
    assert pipeline.train_recformer(out / "data", tmp_path, config) == rows


def test_transfer_curve_reads_the_share_rows_and_their_full_data_points(tmp_path):
    from recformer_m2.report import plot_curve, transfer_curve

    scores = {"recformer (supervised)": .25, "recformer (pretrained+ft)": .26, "recformer (supervised, model alone)": .2,
              "recformer (supervised, 10% data)": .19, "recformer (pretrained+ft, 10% data)": .22,
              "recformer (supervised, 50% data)": .23, "recformer (pretrained+ft, 50% data)": .235, "textknn": .21}
    table = pd.DataFrame([{"method": m, "locale": loc, "MRR@100": v - (loc == "ES") * .01}
                          for m, v in scores.items() for loc in ("ES", "overall")])
    curve = transfer_curve(table)
    assert list(curve.index) == [10.0, 50.0, 100.0]
    assert list(curve.columns) == ["supervised", "pretrained+ft", "pretrained+ft gain"]
    assert curve["supervised"].tolist() == [.19, .23, .25]  # overall rows, not ES
    assert curve["pretrained+ft gain"].tolist() == pytest.approx([.03, .005, .01])
    plot_curve(curve, tmp_path / "curve.png", "t")
    assert (tmp_path / "curve.png").stat().st_size > 0
    assert transfer_curve(table[~table["method"].str.contains("% data")]).empty
