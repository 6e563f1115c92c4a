"""The decoding study: its text metrics against hand-computed cases, the count and source models as generators,
the frontier rule, the parameter section's errors, and the whole chain on its smoke file (models, hyperfitting in
the study's folder, the grid, resuming, the report notebook)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from study_runner import reproduce

from entropylab.experiments.params import ParamsError, load_params
from entropylab.metrics.generation import js_divergence, repetition, word_entropy, word_frequencies, zipf_coefficient
from entropylab.metrics.references import CountModel, SourceModel, ngram_references
from entropylab.paths import project_root
from entropylab.studies.decoding import tables
from entropylab.studies.decoding.spec import read_spec
from entropylab.training import store

ROOT = project_root(Path(__file__).parent)
SMOKE = ROOT / "params" / "decoding_smoke.yaml"


# -- metrics -------------------------------------------------------------------------------------------------

def test_repetition_counts_the_share_of_words_that_repeat_an_earlier_one():
    words = np.array([[1, 2, 3, 4], [5, 5, 5, 5], [1, 2, 1, 2]])
    assert repetition(words) == pytest.approx((0.0 + 0.75 + 0.5) / 3)


def test_word_entropy_and_js_divergence_on_hand_made_distributions():
    f = word_frequencies(np.array([[1, 1, 2, 3]]), 5)
    assert f.tolist() == [0.0, 0.5, 0.25, 0.25, 0.0]
    assert word_entropy(f) == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))
    assert word_entropy(word_frequencies(np.array([[4, 4, 4]]), 5)) == 0.0
    assert js_divergence(f, f) == pytest.approx(0.0)
    assert js_divergence(np.array([0, 1.0, 0]), np.array([0, 0, 1.0])) == pytest.approx(1.0)  # disjoint: 1 bit
    r = np.array([0.0, 0.25, 0.25, 0.25, 0.25])
    m = (f + r) / 2
    expected = 0.5 * sum(a * math.log2(a / b) for a, b in zip(f, m, strict=True) if a > 0) + \
        0.5 * sum(a * math.log2(a / b) for a, b in zip(r, m, strict=True) if a > 0)
    assert js_divergence(f, r) == pytest.approx(expected)
    with pytest.raises(ValueError, match="same words"):
        js_divergence(f, r[:4])


def test_zipf_coefficient_recovers_the_exponent_of_exact_power_law_counts():
    counts = np.round(10_000 / np.arange(1, 60) ** 1.3).astype(int)
    words = np.repeat(np.arange(1, 60), counts)[None, :]
    assert zipf_coefficient(words) == pytest.approx(1.3, abs=0.01)
    assert math.isnan(zipf_coefficient(np.array([[7, 7, 7]])))


@pytest.mark.parametrize("vocab", [400, 11264])  # the synthetic corpus's words and NYT's
@pytest.mark.parametrize("exponent", [0.8, 1.0, 1.2])
def test_zipf_coefficient_recovers_the_exponent_of_words_drawn_from_a_zipf_law(vocab, exponent):
    """The study's sample: 500 prefixes x 10 words drawn from ``p(r) ∝ r^-s`` over ``vocab`` words, ten fixed
    seeds. The estimate's own spread at that size is about 0.01-0.02 (one seed strays 0.066 at s = 0.8 over 11,264
    words): the mean must lie within 0.05 of ``s`` and every seed within 0.08. The least-squares slope over all
    ranks gave 0.55, 0.68 and 0.85 over 11,264 words (0.91, 1.11, 1.25 over 400)."""
    p = np.arange(1, vocab + 1, dtype=np.float64) ** -exponent
    p /= p.sum()
    estimates = np.array([zipf_coefficient(np.random.default_rng(seed).choice(vocab, size=(500, 10), p=p) + 1)
                          for seed in range(10)])
    assert estimates.mean() == pytest.approx(exponent, abs=0.05)
    assert np.all(np.abs(estimates - exponent) < 0.08), estimates


def test_the_count_models_as_generators_give_the_reference_cross_entropies():
    rng = np.random.default_rng(0)
    vocab = 30
    x_train, y_train = rng.integers(0, vocab, size=(400, 5)), rng.integers(1, vocab, size=400)
    x_val, y_val = rng.integers(0, vocab, size=(100, 5)), rng.integers(1, vocab, size=100)
    numbers = ngram_references(y_train, x_train, y_val, x_val, vocab)
    for order, name in ((1, "unigram"), (2, "bigram")):
        log_p = CountModel(y_train, x_train, vocab, order)(x_val)
        assert np.allclose(np.exp(log_p).sum(axis=1), 1.0) and np.all(np.isneginf(log_p[:, 0]))
        assert -log_p[np.arange(100), y_val].mean() == pytest.approx(numbers[f"{name}_cross_entropy"])


def test_the_source_model_never_emits_a_word_the_source_cannot():
    from entropylab.data import load_corpus
    from entropylab.decoding import continue_prefixes

    corpus = load_corpus("synthetic")
    words = continue_prefixes(SourceModel(corpus.true_next), corpus.X[:200], 8, head="softmax", strategy="sample",
                              seed=0, true_next=corpus.true_next)
    assert np.all(words.true_probability > 0)
    assert words.surprisal.mean() == pytest.approx(-np.log(words.true_probability).mean())


# -- the frontier --------------------------------------------------------------------------------------------

def test_a_setting_is_on_the_frontier_unless_another_is_at_least_as_good_on_both_axes():
    table = pd.DataFrame({"decoder": ["a", "a", "b", "b", "c"], "possible_loglik": [-1.0, -3.0, -2.0, -2.0, -1.0],
                          "word_entropy": [1.0, 3.0, 2.0, 1.5, 1.0], "impossible": 0.0})
    marked = tables.frontier(table)
    assert marked["on_frontier"].tolist() == [True, True, True, False, True]  # ties (rows 0 and 4) both stay
    assert marked["eligible"].all()


def test_decoders_are_ranked_by_their_interpolated_quality_at_the_model_s_median_diversity():
    cells = pd.DataFrame({
        "model": "m", "kind": "run",
        "decoder": ["a", "a", "b", "b", "c", "greedy"],
        "word_entropy": [1.0, 3.0, 2.0, 4.0, 0.5, 9.0],  # sampled diversities: median 2.0 (greedy left out)
        "possible_loglik": [-1.0, -3.0, -1.5, -2.5, -0.1, 0.0],
        "possible_loglik_std": [0.01, 0.01, 0.01, 0.01, 0.01, float("nan")],
        "impossible": 0.0, "seeds": [3, 3, 3, 3, 3, 1]})
    table = tables.matched_quality(cells).set_index("decoder")
    assert table.loc["a", "quality_at_level"] == pytest.approx(-2.0)  # halfway between (1, -1) and (3, -3)
    assert table.loc["b", "quality_at_level"] == pytest.approx(-1.5)  # its own setting at 2.0
    assert table.loc["b", "verdict"] == "best or tie" and table.loc["a", "verdict"] == "worse"
    assert table.loc["c", "verdict"] == "does not reach the level" and "greedy" not in table.index


# -- the hyperfitting comparison -----------------------------------------------------------------------------

def _greedy_words(tmp_path: Path, **words: np.ndarray) -> None:
    from entropylab.studies.decoding.study import study_dir

    folder = study_dir("decoding", tmp_path) / "cells" / "nyt_headline"
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in words.items():
        np.save(folder / f"{name.replace('_', '-')}-greedy.npy", array)


def test_the_hyperfit_comparison_finds_a_planted_difference_in_repetition(tmp_path):
    rng = np.random.default_rng(0)
    varied = np.array([rng.permutation(np.arange(1, 40))[:10] for _ in range(60)])  # no word repeats: 0
    looping = np.where(np.arange(10) % 2 == 0, varied[:, :1], varied[:, 1:2])  # two words in turn: 0.8
    looping[:30, 2] = varied[:30, 5]  # repetition 0.7 on half the prefixes, so the differences vary
    _greedy_words(tmp_path, cross_entropy=looping, hyperfitted=varied)
    row = tables.hyperfit_comparison("decoding", "nyt/headline", tmp_path)
    assert row["verdict"] == "less repetitive" and row["prefixes"] == 60
    assert row["difference"] == pytest.approx(-0.75) and row["high"] < 0
    assert row["original_repetition"] == pytest.approx(0.75) and row["hyperfitted_repetition"] == 0.0
    _greedy_words(tmp_path, cross_entropy=varied, hyperfitted=looping)
    assert tables.hyperfit_comparison("decoding", "nyt/headline", tmp_path)["verdict"] == "more repetitive"
    _greedy_words(tmp_path, cross_entropy=looping, hyperfitted=looping[::-1])
    assert tables.hyperfit_comparison("decoding", "nyt/headline", tmp_path)["verdict"] == "no difference"


def test_greedy_words_of_other_prefixes_are_a_not_comparable_row_not_an_error(tmp_path):
    words = np.tile(np.arange(1, 11), (60, 1))
    _greedy_words(tmp_path, cross_entropy=words, hyperfitted=words[:50])
    row = tables.hyperfit_comparison("decoding", "nyt/headline", tmp_path)
    assert row["verdict"] == "not comparable: different prefixes (cross-entropy 60 x 10 words, hyperfitted 50 x 10)"
    assert math.isnan(row["difference"]) and row["prefixes"] == 0
    from entropylab.studies.decoding.report import DecodingReport, findings

    lines = findings(DecodingReport("decoding", ["nyt/headline"], hyperfit=[row]))
    assert lines == [f"nyt/headline: hyperfitted against its starting model, greedy: {row['verdict']}."]


# -- the parameter section -----------------------------------------------------------------------------------

def test_the_study_file_reads_and_plans_every_decoder_over_its_range():
    params = load_params(ROOT / "params" / "decoding.yaml")
    spec = read_spec(params)
    assert spec.prefixes == 250 and spec.words == 10 and len(spec.sampling_seeds) == 3  # per side: dev and test
    assert all(point.parameters["test_fraction"] == 0.2 for point in params.points)
    cells = spec.cells()
    assert {d for d, _, _ in cells} >= {"greedy", "beam", "temperature", "top_k", "top_p", "typical_p", "min_p",
                                        "epsilon_cutoff", "eta_cutoff", "top_h", "mirostat"}
    assert sum(d == "greedy" for d, _, _ in cells) == 1  # a seed changes nothing: run once
    assert sum(d == "top_p" for d, _, _ in cells) == 3 * len(spec.decoders["top_p"])


@pytest.mark.parametrize(("section", "message"), [
    ("{decoders: {temperature: [-1.0]}, models: [{name: a, loss: cross_entropy}]}", "temperature must be"),
    ("{decoders: {top_p: [1.5]}, models: [{name: a, loss: cross_entropy}]}", "top_p must be"),
    ("{decoders: {nucleus: [0.9]}, models: [{name: a, loss: cross_entropy}]}", "unknown decoder"),
    ("{decoders: {greedy: []}, models: [{name: a, loss: crossentropy}]}", "models[0].loss"),
    ("{decoders: {greedy: []}, models: [{name: a, loss: cross_entropy}], hyperfit: {model: b}}", "hyperfit.model"),
    ("{decoders: {greedy: []}, models: [{name: a, loss: cross_entropy}], prefixes: 0}", "prefixes"),
    # not finite, not a number (before: an OverflowError traceback, or taken as 1, inf or a text)
    ("{decoders: {beam: [.inf]}, models: [{name: a, loss: cross_entropy}]}", "decoders.beam: got inf; expected"),
    ("{decoders: {top_k: [-.inf]}, models: [{name: a, loss: cross_entropy}]}", "decoders.top_k: got -inf; expected"),
    ("{decoders: {temperature: [.inf]}, models: [{name: a, loss: cross_entropy}]}", "temperature: got inf; expected"),
    ("{decoders: {top_p: [true]}, models: [{name: a, loss: cross_entropy}]}", "top_p: got True; expected"),
    ("{decoders: {beam: [true]}, models: [{name: a, loss: cross_entropy}]}", "beam: got True; expected"),
    ("{decoders: {top_p: ['0.5']}, models: [{name: a, loss: cross_entropy}]}", "top_p: got '0.5'; expected"),
    ("{decoders: {top_k: ['5']}, models: [{name: a, loss: cross_entropy}]}", "top_k: got '5'; expected"),
    # words beyond any continuation (before: accepted, then every job's MemoryError after the training)
    ("{decoders: {greedy: []}, models: [{name: a, loss: cross_entropy}], words: 1000000000}",
     "decoding.words: got 1000000000; expected at most 1000"),
    # a reference twice: two jobs of one name, refused only after the training (two steps share a name)
    ("{decoders: {greedy: []}, models: [{name: a, loss: cross_entropy}], references: [bigram, bigram]}",
     "references: got ['bigram', 'bigram']; expected a list of unigram, bigram, kneser_ney, source, each once"),
    # one sampling seed: no spread over seeds, so the tables would call every gap between decoders worse
    ("{decoders: {greedy: []}, models: [{name: a, loss: cross_entropy}], sampling_seeds: [0]}",
     "decoding.sampling_seeds: got [0]; expected at least 2 distinct seeds, e.g. [0, 1]"),
])
def test_a_bad_decoding_section_is_one_clear_error(tmp_path, section, message):
    path = tmp_path / "bad.yaml"
    path.write_text("experiment: bad\nruns:\n  - notebook: notebooks/07_objectives_train.ipynb\n"
                    f"    grid: {{loss: cross_entropy}}\ndecoding: {section}\n")
    with pytest.raises(ParamsError, match=message.replace("[", r"\[").replace("]", r"\]")) as caught:
        read_spec(load_params(path))
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_the_best_objective_named_in_the_study_file_is_the_objectives_study_s_best():
    """params/decoding.yaml names the best objective per dataset; the objectives study's committed tables must
    agree: the objective of lowest mean dev cross-entropy (a study with a test side: the choice is made on dev), or
    in a two-sided study's tables the lowest mean validation cross-entropy among those judged better."""
    spec = read_spec(load_params(ROOT / "params" / "decoding.yaml"))
    table_dir = ROOT / "outputs" / "tables" / "objectives"
    for dataset, setting in (("synthetic", "synthetic_headline"), ("nyt", "nyt_headline")):
        numbers = table_dir / f"{setting}_numbers.csv"
        if not numbers.is_file():
            pytest.skip("the objectives study's tables are not in outputs/")
        table = pd.read_csv(numbers)
        if "dev_cross_entropy" in table.columns:
            models = table[table["dev_cross_entropy"].notna() & (table["objective"] != "cross_entropy")]
            best = models.sort_values("dev_cross_entropy").iloc[0]
        else:
            better = table[table["verdict_val_cross_entropy"] == "better"]
            best = better.sort_values("val_cross_entropy").iloc[0]
        named = next(m for m in spec.models if m.name == "best objective" and m.dataset == dataset)
        assert (named.loss, named.weight) == (best["objective"], pytest.approx(best["value"]))


# -- the whole chain -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoding")
    done = reproduce("decoding", SMOKE, root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root


def test_the_study_decodes_every_cell_of_every_model_and_reference(study):
    spec = read_spec(load_params(SMOKE))
    cells = pd.read_csv(study / "results" / "decoding-smoke-generation.csv")
    per_model = cells.groupby(["side", "model"]).size().to_dict()
    for side in ("dev", "test"):  # every cell on both sides, once each
        assert {m: n for (s, m), n in per_model.items() if s == side} == {
            "cross-entropy": len(spec.cells()), "control-mse": len(spec.cells()), "hyperfitted": len(spec.cells()),
            "bigram": len(spec.sampling_seeds), "kneser_ney": len(spec.sampling_seeds),
            "source": len(spec.sampling_seeds)}
    assert set(cells["side"]) == {"dev", "test"}
    assert not cells.duplicated(["model", "side", "decoder", "value", "sampling_seed"]).any()
    assert (cells["prefixes"] == spec.prefixes).all() and (cells["words"] == spec.words).all()
    greedy = cells[(cells["model"] == "cross-entropy") & (cells["decoder"] == "greedy")].set_index("side")
    assert greedy.loc["dev", "js_heldout"] != greedy.loc["test", "js_heldout"]  # other prefixes, other next words
    source = cells[cells["model"] == "source"]
    assert (source["impossible"] == 0).all()  # the known truth never emits what it cannot
    best_model = cells[cells["kind"] != "source"]["true_loglik"].max()
    assert source["true_loglik"].min() > best_model - 1.0  # the source's own text is (near) the best quality
    np.testing.assert_allclose(source["possible_loglik"], source["true_loglik"])  # nothing impossible: they agree
    assert (cells["possible_loglik"] >= cells["true_loglik"]).all() and (cells["possible_loglik"] <= 0).all()
    for column in ("distinct_1", "distinct_2", "repeat", "repetition", "js_heldout", "impossible"):
        assert cells[column].between(0, 1).all(), column
    sampled = cells[(cells["model"] == "cross-entropy") & (cells["decoder"] == "top_p")]
    assert sampled.groupby("value")["distinct_2"].nunique().max() > 1  # a seed changes the words


def test_hyperfitting_writes_to_the_study_folder_and_no_run_folder(study):
    runs = sorted(p.name for p in (study / "runs" / "decoding-smoke").iterdir())
    assert len(runs) == 2 and all(r.startswith(("cross_entropy", "mse")) for r in runs)
    folder = study / "studies" / "decoding-smoke" / "hyperfit" / "synthetic_headline"
    assert (folder / "COMPLETE").is_file() and (folder / "model.weights.h5").is_file()
    copying = pd.read_csv(study / "results" / "decoding-smoke-copying.csv").set_index("model")
    assert copying.loc["hyperfitted", "fitted_2gram_share"] > 0
    assert (copying.filter(like="share") <= 1).all().all()
    history = pd.read_csv(study / "results" / "decoding-smoke-hyperfit.csv")
    assert history["fit_cross_entropy"].iloc[-1] < 0.5 * history["fit_cross_entropy"].iloc[0]
    assert history["val_entropy"].iloc[-1] < history["val_entropy"].iloc[0]


def test_the_report_notebook_tables_and_figures_exist(study):
    notebook = study / "notebooks" / "decoding-smoke" / "08_decoding.ipynb"
    assert notebook.is_file() and "Traceback" not in notebook.read_text()
    figures = study / "figures" / "decoding-smoke"
    for name in ("frontier_synthetic_headline", "diversity_synthetic_headline", "hyperfit"):
        assert (figures / f"{name}.png").stat().st_size > 10_000, name
    tables_dir = study / "tables" / "decoding-smoke"
    frontier = pd.read_csv(tables_dir / "synthetic_headline_frontier.csv")
    assert set(frontier["model"]) == {"cross-entropy", "control-mse", "hyperfitted", "bigram", "kneser_ney", "source"}
    assert list(frontier.columns) == tables.FRONTIER_COLUMNS
    matched = pd.read_csv(tables_dir / "synthetic_headline_matched.csv")
    assert list(matched.columns) == tables.MATCHED_COLUMNS and "seed_sd" not in matched
    assert "possible ll" in (tables_dir / "synthetic_headline.md").read_text()
    assert "two standard errors" in (tables_dir / "summary.md").read_text()
    assert "matched diversity level" in (tables_dir / "summary.md").read_text() and \
        "made on the dev prefixes" in (tables_dir / "summary.md").read_text()
    # the reported tables hold the test side only; the matched level is the dev side's median
    generation = pd.read_csv(study / "results" / "decoding-smoke-generation.csv")
    numbers = pd.read_csv(tables_dir / "synthetic_headline_numbers.csv")
    for side in ("test", "dev"):
        own = tables.cell_table(generation, "synthetic/headline", side)
        same = np.isclose(numbers["distinct_2"], own["distinct_2"]) & np.isclose(numbers["word_entropy"],
                                                                                 own["word_entropy"])
        assert same.all() if side == "test" else not same.all(), side
    dev = tables.cell_table(generation, "synthetic/headline", "dev")
    sampled = dev[~dev["kind"].isin(tables.REFERENCE_KINDS) & ~dev["decoder"].isin(["greedy", "beam"])]
    levels = matched.groupby("model")["diversity_level"].first()
    for model, level in levels.items():
        assert level == pytest.approx(sampled[sampled["model"] == model]["word_entropy"].median()), model
    test = tables.cell_table(generation, "synthetic/headline", "test")
    test_sampled = test[~test["kind"].isin(tables.REFERENCE_KINDS) & ~test["decoder"].isin(["greedy", "beam"])]
    assert any(level != pytest.approx(test_sampled[test_sampled["model"] == m]["word_entropy"].median())
               for m, level in levels.items())  # not the test side's own median
    examples = pd.read_csv(tables_dir / "examples_synthetic_headline.csv")
    assert len(examples) == 6 and examples.iloc[:, 1:].notna().all().all()


def test_a_killed_grid_resumes_without_redoing_finished_cells(study, capsys):
    """Cut after a cell's dev row and before its test row: the finished dev and test cells are kept, only the cut
    ones are decoded again, each on its own side (a dev cell is never taken for its test twin)."""
    from entropylab.experiments.sweep import make_plan
    from entropylab.studies.decoding.grid import decode_job, done_cells, job_is_finished
    from entropylab.studies.decoding.study import plan_jobs

    plan = make_plan(SMOKE, output_root=study)
    job = next(j for j in plan_jobs(plan, read_spec(plan.params)) if j.model == "cross-entropy")
    before = pd.read_csv(job.cells_csv)
    assert before["side"].tolist()[:4] == ["dev", "test", "dev", "test"]  # each cell on both sides in turn
    cut = len(before) - 3  # as if killed three cells before the end: the last kept cell has its dev row only
    assert before.iloc[cut - 1]["side"] == "dev"
    store.write_csv(job.cells_csv, before.iloc[:cut], checked=True)
    assert not job_is_finished(job) and len(done_cells(job)) == cut
    capsys.readouterr()
    decode_job(job)
    decoded = [line for line in capsys.readouterr().out.splitlines() if ": cell " in line]
    assert len(decoded) == 3  # only the cut cells
    assert [line.split(" seed ")[0].split("/")[-1].split(" ")[1] for line in decoded] == \
        before.iloc[cut:]["side"].tolist()
    after = pd.read_csv(job.cells_csv)
    assert len(after) == len(before) and job_is_finished(job)
    pd.testing.assert_frame_equal(after.iloc[:cut], before.iloc[:cut])  # kept as they were (their seconds too)
    keys = ["side", "decoder", "value", "sampling_seed"]
    pd.testing.assert_frame_equal(after.iloc[cut:][keys], before.iloc[cut:][keys])
    numbers = ["distinct_2", "possible_loglik", "true_loglik", "surprisal_mean", "js_heldout"]
    np.testing.assert_allclose(after.iloc[cut:][numbers].to_numpy(), before.iloc[cut:][numbers].to_numpy())


def test_damaged_study_files_are_named_and_cut_cells_are_decoded_again(study, tmp_path, capsys):
    import shutil

    from entropylab.experiments.sweep import make_plan
    from entropylab.studies.decoding.grid import _read_done
    from entropylab.studies.decoding.study import plan_jobs

    shutil.copytree(study / "results", tmp_path / "results")
    path = tmp_path / "results" / "decoding-smoke-generation.csv"
    text = path.read_text()
    path.write_text(text[: int(len(text) * 0.8)])
    with pytest.raises(store.DamagedFileError, match=r"decoding-smoke-generation\.csv is damaged .*reproduce --study"):
        tables.load("decoding-smoke", tmp_path)
    plan = make_plan(SMOKE, output_root=study)
    job = next(j for j in plan_jobs(plan, read_spec(plan.params)) if j.model == "cross-entropy")
    cut = tmp_path / job.cells_csv.name
    shutil.copy(job.cells_csv, cut)
    shutil.copy(store.checksum_path(job.cells_csv), store.checksum_path(cut))
    cut.write_text(cut.read_text()[:-40])
    assert _read_done(cut).empty  # not trusted: its cells are decoded again
    assert f"{cut} is damaged" in capsys.readouterr().out


def test_a_finished_job_is_not_started_again_and_a_missing_cell_restarts_it(study, tmp_path):
    import dataclasses
    import shutil

    from entropylab.experiments.sweep import make_plan
    from entropylab.studies.decoding.grid import job_is_finished
    from entropylab.studies.decoding.study import plan_jobs

    plan = make_plan(SMOKE, output_root=study)
    jobs = plan_jobs(plan, read_spec(plan.params))
    assert all(job_is_finished(job) for job in jobs)
    job = next(j for j in jobs if j.model == "control-mse")
    copy = dataclasses.replace(job, out_dir=str(tmp_path))
    for path in [*job.files(), job.identity_json, store.checksum_path(job.cells_csv)]:
        shutil.copy(path, tmp_path / path.name)
    assert job_is_finished(copy)
    store.write_csv(copy.cells_csv, store.read_csv(copy.cells_csv).iloc[:-1], checked=True)
    assert not job_is_finished(copy)  # one cell short: started again
    shutil.copy(job.cells_csv, copy.cells_csv)
    shutil.copy(store.checksum_path(job.cells_csv), store.checksum_path(copy.cells_csv))
    greedy = tmp_path / "control-mse-greedy.npy"
    greedy.write_bytes(greedy.read_bytes()[:-8])
    assert not job_is_finished(copy)  # cut greedy words: started again
    assert not job_is_finished(dataclasses.replace(job, spec=dataclasses.replace(job.spec, words=job.spec.words + 1)))


def test_matched_quality_survives_a_level_no_decoder_reaches_and_a_single_seed():
    gap = pd.DataFrame({"model": "m", "kind": "run", "decoder": ["a", "a", "b", "b"], "seeds": 1,
                        "word_entropy": [1.0, 2.0, 3.0, 4.0], "possible_loglik": [-1.0, -2.0, -3.0, -4.0]})
    table = tables.matched_quality(gap)  # the median, 2.5, falls between the two decoders' ranges
    assert (table["verdict"] == "does not reach the level").all()
    one_seed = gap.assign(decoder=["a", "a", "b", "b"], word_entropy=[1.0, 3.0, 2.0, 4.0],
                          possible_loglik_std=float("nan"))
    ranked = tables.matched_quality(one_seed).set_index("decoder")
    # -1.75 against -3.25: with one seed there is no standard error, so the gap is not called worse (nor a tie)
    assert ranked.loc["a", "verdict"] == "best or tie" and ranked.loc["b", "verdict"] == tables.ONE_SEED
    only_greedy = gap.assign(decoder="greedy")
    assert tables.matched_quality(only_greedy).empty


def test_a_repeated_decoder_value_is_refused(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("experiment: twice\nruns:\n  - notebook: notebooks/07_objectives_train.ipynb\n"
                    "    grid: {loss: cross_entropy}\n"
                    "decoding: {decoders: {top_k: [5, 5.0]}, models: [{name: a, loss: cross_entropy}]}\n")
    with pytest.raises(ParamsError, match="each value once"):
        read_spec(load_params(path))


def test_cells_of_another_model_or_prefix_count_are_not_reused(study):
    from entropylab.experiments.sweep import make_plan
    from entropylab.studies.decoding.grid import _reusable_cells
    from entropylab.studies.decoding.study import plan_jobs

    plan = make_plan(SMOKE, output_root=study)
    job = next(j for j in plan_jobs(plan, read_spec(plan.params)) if j.model == "control-mse")
    assert len(_reusable_cells(job)) == 2 * len(job.spec.cells())  # the same identity: every cell (dev, test) kept
    import dataclasses

    other = dataclasses.replace(job, spec=dataclasses.replace(job.spec, prefixes=job.spec.prefixes - 1))
    assert _reusable_cells(other).empty
    assert not other.cells_csv.exists() and not (Path(other.out_dir) / "control-mse-greedy.npy").exists()


# -- faults: a killed job, a killed study, two studies at once, a changed section ------------------------------

EXPERIMENT = "decoding-smoke"


def _numbers(root: Path) -> dict[str, pd.DataFrame]:
    """Every results CSV and table of the study, without its timings (what must not depend on how it was run)."""
    files = sorted((root / "results").glob(f"{EXPERIMENT}*.csv")) + sorted((root / "tables" / EXPERIMENT).glob("*.csv"))
    return {p.name: pd.read_csv(p).drop(columns=["seconds"], errors="ignore") for p in files}


def _assert_same_study(root: Path, reference: Path) -> None:
    got, expected = _numbers(root), _numbers(reference)
    assert sorted(got) == sorted(expected)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name], frame, obj=name)


def _wait_for(condition, what: str, process, timeout: float = 600.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := condition()):
            return found
        assert process.poll() is None, f"the study ended before {what}"
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _lock_holder(lock: Path) -> int | None:
    """The pid written in a held step lock whose process is alive."""
    import psutil

    from entropylab.experiments.steps import is_locked

    if not is_locked(lock):
        return None
    text = lock.read_text().strip()
    return int(text) if text.isdigit() and psutil.pid_exists(int(text)) else None


def _kill_study(process) -> None:
    """SIGKILL the study's own process; every process it started must die with it."""
    import signal

    import psutil

    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGKILL)
    process.wait()
    _, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, f"left running: {[p.cmdline() for p in alive]}"


def test_a_study_killed_at_any_point_ends_as_an_uninterrupted_one(study, tmp_path):
    import os
    import signal

    from study_runner import start_reproduce

    root = tmp_path / "out"
    cells = root / "studies" / EXPERIMENT / "cells" / "synthetic_headline"
    notebooks = root / "notebooks" / EXPERIMENT
    # 0. the study is killed while it trains its models: nothing it started outlives it
    training = start_reproduce("decoding", SMOKE, root, tmp_path / "training.log")
    _wait_for(lambda: list((root / "runs" / EXPERIMENT).glob("*/progress.json")), "the training", training)
    _kill_study(training)
    # 1. the hyperfitting job's process is killed: that job fails alone, the report says so and is not stamped
    first = start_reproduce("decoding", SMOKE, root, tmp_path / "first.log")
    victim = _wait_for(lambda: _lock_holder(cells / ".hyperfitted.lock"), "the hyperfitting job", first)
    os.kill(victim, signal.SIGKILL)
    assert first.wait(timeout=600) != 0
    log = (tmp_path / "first.log").read_text()
    assert "decoding FAILED: synthetic/headline hyperfitted: its process was killed by SIGKILL" in log, log[-3000:]
    for model in ("cross-entropy", "control-mse", "bigram", "kneser_ney", "source"):
        assert f"decoded synthetic/headline {model}" in log  # the other jobs went on
    assert "Traceback" not in log
    status = (root / "studies" / EXPERIMENT / "status.json").read_text()
    assert '"complete": false' in status and "hyperfitted" in status
    assert "INCOMPLETE" in (notebooks / "08_decoding.ipynb").read_text()
    assert (root / "tables" / EXPERIMENT / "summary.md").read_text().startswith("INCOMPLETE")
    assert not (notebooks / ".08_decoding.inputs").exists()  # never stamped complete
    # 2. the study itself is killed while its report is executed: nothing it started outlives it
    second = start_reproduce("decoding", SMOKE, root, tmp_path / "second.log")
    _wait_for(lambda: (notebooks / ".08_decoding.partial.ipynb").exists(), "the report", second)
    _kill_study(second)
    # 3. run again: the same cells and tables as the uninterrupted study, the report made again
    third = reproduce("decoding", SMOKE, root)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert "inputs unchanged" not in third.stdout
    _assert_same_study(root, study)
    assert "INCOMPLETE" not in (notebooks / "08_decoding.ipynb").read_text()
    # 4. a changed decoding section (fewer prefixes) redoes the cells and the report, never keeps the old tables
    fewer = tmp_path / "fewer.yaml"
    fewer.write_text(SMOKE.read_text().replace("prefixes: 40", "prefixes: 30"))
    again = reproduce("decoding", fewer, root)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "inputs unchanged" not in again.stdout
    assert set(pd.read_csv(root / "results" / f"{EXPERIMENT}-generation.csv")["prefixes"]) == {30}
    table = "synthetic_headline_numbers.csv"
    assert not _numbers(root)[table].equals(_numbers(study)[table])  # the tables of 30 prefixes, not the old ones


def test_two_studies_at_once_share_the_work_and_end_as_one(study, tmp_path):
    from study_runner import start_reproduce

    root = tmp_path / "out"
    both = [start_reproduce("decoding", SMOKE, root, tmp_path / f"{i}.log") for i in range(2)]
    codes = [p.wait(timeout=900) for p in both]
    logs = [(tmp_path / f"{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], "\n".join(log[-2000:] for log in logs)
    _assert_same_study(root, study)


def test_a_report_s_fingerprint_is_the_same_for_a_relative_or_absolute_parameter_file(tmp_path, monkeypatch):
    """Before, ``reproduce --params params/x.yaml`` then ``--params /abs/params/x.yaml`` (or ``make``, which gives
    the absolute path) executed the report again though nothing it reads had changed."""
    from entropylab.studies.reproduce import inputs_fingerprint

    notebook = tmp_path / "report.ipynb"
    notebook.write_text("{}")
    (tmp_path / "params").mkdir()
    params = tmp_path / "params" / "x.yaml"
    params.write_text("experiment: x\n")
    monkeypatch.chdir(tmp_path)
    relative = inputs_fingerprint(notebook, {}, [Path("params/x.yaml")])
    assert relative == inputs_fingerprint(notebook, {}, [params])
    params.write_text("experiment: y\n")
    assert inputs_fingerprint(notebook, {}, [params]) != relative  # its bytes still count


def test_waiting_for_another_sweep_s_run_names_the_process_holding_it(tmp_path, capsys):
    """The stage waits, without a time limit, while another process holds an unfinished run's lock; before, the
    line named neither that process nor how to stop waiting (a lock held by a hung process waited silently)."""
    import subprocess
    import sys
    import threading
    import time
    import types

    from entropylab.experiments.execute import LOCK
    from entropylab.studies.decoding.study import wait_for_runs

    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys\n"
                               "from entropylab.experiments.steps import exclusive_lock\n"
                               "with exclusive_lock(sys.argv[1]):\n"
                               "    print('held', flush=True)\n"
                               "    sys.stdin.read()\n", str(run / LOCK)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    plan = types.SimpleNamespace(tasks=[types.SimpleNamespace(run_dir=str(run))],
                                 params=types.SimpleNamespace(path="x.yaml"))
    waiter = threading.Thread(target=wait_for_runs, args=(plan,))
    waiter.start()
    time.sleep(2)
    assert waiter.is_alive()  # it waits for the holder
    holder.stdin.close()
    holder.wait(timeout=30)
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    out = capsys.readouterr().out
    assert f"process {holder.pid} holds" in out and "Ctrl-C stops waiting" in out


def test_a_report_after_a_failed_sweep_says_it_is_incomplete(tmp_path, monkeypatch):
    """When a run of the sweep fails, the stage does not run and the report is made from an earlier pass's files.
    Before, the stage's status still said that earlier pass was complete, so the report did not say INCOMPLETE."""
    from entropylab.experiments.execute import Outcome
    from entropylab.experiments.sweep import SweepResult, make_plan
    from entropylab.studies import reproduce
    from entropylab.studies.decoding.report import incomplete_line
    from entropylab.studies.decoding.study import STATUS, study_dir

    root = tmp_path / "out"
    plan = make_plan(SMOKE, output_root=root)
    status = study_dir(plan.experiment, root) / STATUS
    status.parent.mkdir(parents=True)
    status.write_text('{"complete": true, "missing": [], "errors": []}\n')  # an earlier complete pass
    failed = Outcome(plan.tasks[0].name, plan.tasks[0].run_dir, "failed", "DeadKernelError: Kernel died\nmore")
    monkeypatch.setattr("entropylab.experiments.sweep.run_sweep", lambda *a, **k: SweepResult(plan, [failed]))
    monkeypatch.setattr("entropylab.studies.decoding.study.run_stage", lambda p: pytest.fail("the stage ran"))
    assert reproduce.reproduce(SMOKE, [], root, "decoding") == 1
    line = incomplete_line(plan.experiment, root)
    assert line is not None and line.startswith("INCOMPLETE")
    assert f"run {plan.tasks[0].name} failed in the sweep: DeadKernelError: Kernel died" in line


def test_the_copying_table_holds_the_study_s_models_only(tmp_path):
    """Before, every ``*-greedy.npy`` of a setting's folder made a row, so a model renamed or removed from the file
    stayed in the report's copying table."""
    from entropylab.experiments.params import SWEEP_OWNED
    from entropylab.experiments.sweep import make_plan
    from entropylab.studies.decoding.grid import HYPERFITTED, Job
    from entropylab.studies.decoding.study import copying, study_dir
    from entropylab.training import store
    from entropylab.training.config import RunConfig

    plan = make_plan(SMOKE, output_root=tmp_path)
    spec = read_spec(plan.params)
    task = next(t for t in plan.tasks if t.parameters["loss"] == "cross_entropy")
    run = Path(task.run_dir)
    store.write_json(run / store.CONFIG, RunConfig.from_dict(
        {k: v for k, v in task.parameters.items() if k not in SWEEP_OWNED}).to_dict())
    out = study_dir(plan.experiment, tmp_path) / "cells" / "synthetic_headline"
    out.mkdir(parents=True)
    for model in ("cross-entropy", HYPERFITTED, "renamed-model"):
        np.save(out / f"{model}-greedy.npy", np.array([[3, 4, 5, 6], [4, 5, 6, 7]], dtype=np.int32))
    jobs = [Job("synthetic/headline", "cross-entropy", "run", str(run), str(out), spec),
            Job("synthetic/headline", HYPERFITTED, "hyperfit", str(run), str(out), spec, str(tmp_path / "fit"))]
    table = copying(plan, spec, jobs)
    assert sorted(table["model"]) == ["cross-entropy", HYPERFITTED]


def test_tables_of_a_hyperfitting_taken_out_of_the_file_are_not_kept(tmp_path, monkeypatch):
    """Before, the stage gathered every finished hyperfitting folder and left an earlier pass's copying table, so
    with the hyperfitting taken out of the file the report still showed it."""
    import dataclasses

    from entropylab.experiments.results import results_path
    from entropylab.experiments.sweep import make_plan
    from entropylab.studies.decoding.grid import Job
    from entropylab.studies.decoding.study import collect, study_dir
    from entropylab.training import store

    plan = make_plan(SMOKE, output_root=tmp_path)
    spec = dataclasses.replace(read_spec(plan.params), hyperfit=None)
    root = study_dir(plan.experiment, tmp_path)
    out = root / "cells" / "synthetic_headline"
    job = Job("synthetic/headline", "cross-entropy", "run", plan.tasks[0].run_dir, str(out), spec)
    store.write_csv(job.cells_csv, pd.DataFrame({"model": ["cross-entropy"], "distinct_2": [0.5]}), checked=True)
    fit = root / "hyperfit" / "synthetic_headline"  # an earlier pass's hyperfitting
    store.write_csv(fit / store.HISTORY, pd.DataFrame({"epoch": [1], "fit_cross_entropy": [1.0]}), checked=True)
    store.write_json(fit / "hyperfit.json", {"identity": {"recipe": {"model": "cross-entropy", "headlines": 10}}})
    store.mark_complete(fit)
    stale = results_path(f"{plan.experiment}-hyperfit", tmp_path)
    store.write_csv(stale, pd.DataFrame({"epoch": [1]}), checked=True)
    written = collect(plan.experiment, tmp_path, [job])
    assert sorted(written) == ["generation"]
    assert not stale.exists() and not store.checksum_path(stale).exists()
    assert sorted(collect(plan.experiment, tmp_path)) == ["generation", "hyperfit"]  # without jobs: every folder
    # the stage's pass without hyperfitting removes the copying table of the earlier one
    from entropylab.studies.decoding import study

    copying_csv = results_path(f"{plan.experiment}-copying", tmp_path)
    store.write_csv(copying_csv, pd.DataFrame({"model": ["hyperfitted"]}), checked=True)
    monkeypatch.setattr(study, "read_spec", lambda params: spec)
    monkeypatch.setattr(study, "wait_for_runs", lambda plan: None)
    monkeypatch.setattr(study, "plan_jobs", lambda plan, spec: [job])
    monkeypatch.setattr(study, "run_jobs", lambda jobs, workers, client: [])
    monkeypatch.setattr(study, "missing_cells", lambda jobs: [])
    assert study.run_stage(plan) == 0
    assert not copying_csv.exists() and not store.checksum_path(copying_csv).exists()


def _bigram_job_parts(output_root: Path) -> tuple:
    """``(spec, task, config, corpus, split, bigram model)`` of the smoke file's first run, without training it."""
    from entropylab.experiments.params import SWEEP_OWNED
    from entropylab.experiments.sweep import make_plan
    from entropylab.metrics.references import CountModel
    from entropylab.training.config import RunConfig
    from entropylab.training.train import load_run_corpus, run_split

    plan = make_plan(SMOKE, output_root=output_root)
    task = plan.tasks[0]
    config = RunConfig.from_dict({k: v for k, v in task.parameters.items() if k not in SWEEP_OWNED})
    corpus = load_run_corpus(config)
    data = run_split(corpus, config)
    return (read_spec(plan.params), task, config, corpus, data,
            CountModel(data.y_train, data.x_train, corpus.vocab_size, 2))


def test_a_cut_examples_file_is_written_again(tmp_path, capsys):
    """Before, a cut ``<model>-examples.csv`` was read as an empty table and its job failed with
    ``KeyError: 'decoder'``, on every rerun (the line said it would be decoded again)."""
    from entropylab.studies.decoding.grid import Job, _examples

    spec, task, config, corpus, data, model = _bigram_job_parts(tmp_path)
    owners = corpus.subset(config.max_sequences).headline_index[data.val_index]
    job = Job("synthetic/headline", "cross-entropy", "run", task.run_dir, str(tmp_path / "cells"), spec)
    _examples(job, model, "softmax", corpus, owners)
    path = tmp_path / "cells" / "cross-entropy-examples.csv"
    whole = store.read_csv(path)
    path.write_bytes(path.read_bytes()[:200])  # cut mid-row
    _examples(job, model, "softmax", corpus, owners)
    assert "is damaged" in capsys.readouterr().out
    assert store.read_csv(path).equals(whole)


def test_a_cut_greedy_words_file_is_decoded_again_and_named(tmp_path, monkeypatch):
    """Before, a cut ``<model>-greedy.npy`` was never written again (its greedy cell was done) and the copying
    table failed on it with numpy's "Failed to read all data for array", naming no file."""
    from entropylab.metrics.generation import choose_prefixes
    from entropylab.studies.decoding import grid
    from entropylab.studies.decoding.spec import RERUN

    spec, task, config, corpus, data, model = _bigram_job_parts(tmp_path)
    rows = grid.side_rows(data, spec.prefixes, config.split_seed)
    assert sorted(rows) == ["dev", "test"]
    np.testing.assert_array_equal(rows["dev"], choose_prefixes(len(data.y_val), spec.prefixes, config.split_seed))
    monkeypatch.setattr(grid, "_load", lambda job: (model, "softmax", corpus, config, data, rows))
    monkeypatch.setattr(grid, "_examples", lambda *args: None)
    job = grid.Job("synthetic/headline", "cross-entropy", "run", task.run_dir, str(tmp_path / "cells"), spec)
    grid.decode_job(job)
    path = tmp_path / "cells" / "cross-entropy-greedy.npy"
    whole = np.load(path)
    assert len(whole) == len(rows["test"])  # the greedy words are the reported (test) side's
    path.write_bytes(path.read_bytes()[:200])
    grid.decode_job(job)
    assert np.array_equal(np.load(path), whole)
    cells = store.read_csv(job.cells_csv)
    assert len(cells) == 2 * len(spec.cells()) and (cells["decoder"] == "greedy").sum() == 2  # one per side
    path.write_bytes(path.read_bytes()[:200])  # what the copying table reads: one line naming it
    with pytest.raises(store.DamagedFileError, match=r"cross-entropy-greedy\.npy is damaged .*reproduce --study"):
        grid.read_words(path, fix=RERUN)


def test_a_cut_identity_file_has_its_job_decoded_again(tmp_path, capsys):
    """Before, a cut ``<model>.identity.json`` failed its job on every rerun (DamagedFileError: delete it)."""
    from entropylab.studies.decoding.grid import Job, _reusable_cells
    from entropylab.training import store

    spec = read_spec(load_params(SMOKE))
    job = Job("synthetic/headline", "cross-entropy", "run", str(tmp_path / "run"), str(tmp_path / "cells"), spec)
    store.write_csv(job.cells_csv, pd.DataFrame({"decoder": ["greedy"], "value": [float("nan")],
                                                 "sampling_seed": [0], "prefixes": [spec.prefixes],
                                                 "words": [spec.words]}), checked=True)
    store.write_json(job.identity_json, job.identity)
    assert len(_reusable_cells(job)) == 1
    job.identity_json.write_text(job.identity_json.read_text()[:20])
    assert _reusable_cells(job).empty  # decoded again
    assert "identity.json is damaged" in capsys.readouterr().out
    assert store.read_json(job.identity_json) == job.identity and not job.cells_csv.exists()


def test_cells_without_a_side_are_validation_cells_and_never_finish_a_job_with_dev_and_test(tmp_path):
    """A cells file from before sides (no ``side`` column) holds validation cells: a job whose run has a test side
    (its config's ``test_fraction > 0``) wants every cell on dev and on test, so it is not finished by them; a job
    whose run has none is."""
    from entropylab.studies.decoding.grid import Job, done_cells, job_keys, job_sides

    spec = read_spec(load_params(SMOKE))
    run = tmp_path / "run"
    job = Job("synthetic/headline", "bigram", "bigram", str(run), str(tmp_path / "cells"), spec)
    old = pd.DataFrame({"decoder": "temperature", "value": 1.0, "sampling_seed": list(spec.sampling_seeds),
                        "prefixes": spec.prefixes, "words": spec.words})
    store.write_csv(job.cells_csv, old, checked=True)
    assert {key[0] for key in done_cells(job)} == {"validation"}
    store.write_json(run / store.CONFIG, {"test_fraction": 0.2})
    assert job_sides(job) == ("dev", "test") and not job_keys(job) <= done_cells(job)
    store.write_csv(job.cells_csv, pd.concat([old.assign(side="dev"), old.assign(side="test").iloc[:-1]]),
                    checked=True)
    assert job_keys(job) - done_cells(job) == {("test", "temperature", 1.0, spec.sampling_seeds[-1])}
    store.write_json(run / store.CONFIG, {"test_fraction": 0.0})
    assert job_sides(job) == ("validation",)
    store.write_csv(job.cells_csv, old, checked=True)
    assert job_keys(job) == done_cells(job)
