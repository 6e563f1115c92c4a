"""Word-frequency bands (issue 22): the band of each word from hand-counted training labels (the boundary rule, ties,
unseen words, padding); the evaluator's per-band cross-entropy against NumPy on a model's log-probabilities, on a
table model and on a trained run (validation and test sides); the fused group's evaluator against the one-run
evaluator (JAX); the band table of the objectives study on a planted case."""

from __future__ import annotations

import textwrap

import keras
import numpy as np
import pandas as pd
import pytest
from jax_script import run_jax_script
from test_calibration import table_model

from entropylab.bench.pipelines import backend_available
from entropylab.metrics import BANDS, ValidationEvaluator, band_means, band_summary, word_bands
from entropylab.objectives import keras_loss

FREQUENT, MIDDLE, RARE, UNSEEN = range(4)


def labels_from(counts: dict[int, int]) -> np.ndarray:
    return np.concatenate([np.full(n, word) for word, n in counts.items()]).astype(np.int32)


# -- the band of each word ---------------------------------------------------------------------------------------------

def test_bands_by_hand_with_ties_a_straddling_word_an_exact_boundary_unseen_words_and_padding():
    """N = 12 training tokens; sorted by count, ties by id: 1 (3), 3 (3), 2 (2), 5 (2), 6 (1), 7 (1), starting at
    tokens 0, 3, 6, 8, 10, 11. Word 3 runs over tokens 3..5 across the first boundary (N/3 = 4): it starts in the
    first third, so frequent. Word 5 starts exactly at 2N/3 = 8: rare. Words 4 and 8 are never labels: unseen."""
    counts = {3: 3, 1: 3, 5: 2, 2: 2, 6: 1, 7: 1}
    labels = np.concatenate([labels_from(counts), [0, 0]])  # padding labels: never counted, in no band
    bands = word_bands(labels, 9)
    expected = {0: -1, 1: FREQUENT, 3: FREQUENT, 2: MIDDLE, 5: RARE, 6: RARE, 7: RARE, 4: UNSEEN, 8: UNSEEN}
    assert bands.tolist() == [expected[i] for i in range(9)]
    assert bands.dtype == np.int32
    # ties broken by id, not by the labels' order: 2 (middle) before 5 (rare) whatever order the labels come in
    shuffled = np.random.default_rng(0).permutation(labels)
    assert word_bands(shuffled, 9).tolist() == bands.tolist()
    # counted with the padding labels (N = 14), word 5 would start before 2N/3 and be middle: padding is not a word
    summary = band_summary(bands, labels)
    assert {b: summary[b]["words"] for b in BANDS} == {"frequent": 2, "middle": 1, "rare": 3, "unseen": 2}
    assert summary["frequent"]["train_share"] == pytest.approx(6 / 12)
    assert summary["rare"]["train_share"] == pytest.approx(4 / 12)
    assert summary["unseen"]["train_share"] == 0.0


def test_one_word_over_two_thirds_of_the_tokens_leaves_the_middle_band_empty():
    bands = word_bands(labels_from({1: 8, 2: 1, 3: 1}), 5)  # word 2 starts at token 8 of 10: 3 * 8 >= 2 * 10
    assert bands.tolist() == [-1, FREQUENT, RARE, RARE, UNSEEN]
    ties = word_bands(labels_from({4: 1, 2: 1, 3: 1}), 5)  # all tie: by id, 2 starts at 0, 3 at 1, 4 at 2 of N = 3
    assert ties.tolist() == [-1, UNSEEN, FREQUENT, MIDDLE, RARE]


def test_bad_labels_name_the_fix():
    with pytest.raises(ValueError, match="pass the corpus' vocab_size"):
        word_bands(np.array([1, 5]), 5)
    with pytest.raises(ValueError, match="vocab_size must be at least 1"):
        word_bands(np.array([], dtype=np.int32), 0)
    with pytest.raises(ValueError, match="one value per band"):
        band_means(np.ones(3), np.ones(3), 3)


# -- the evaluator's per-band cross-entropy ----------------------------------------------------------------------------

def per_band_reference(log_p: np.ndarray, labels: np.ndarray, bands: np.ndarray) -> dict[str, float]:
    """Mean ``-log p_t`` over the labels of each band and the bands' shares, from the log-probabilities."""
    nll = -log_p[np.arange(len(labels)), labels].astype(np.float64)
    label_band = bands[labels]
    out = {}
    for index, band in enumerate(BANDS):
        members = label_band == index
        out[f"val_ce_{band}"] = float(nll[members].mean()) if members.any() else float("nan")
        out[f"val_share_{band}"] = float(members.mean())
    return out


def assert_band_metrics(values: dict, reference: dict, prefix: str = "val_") -> None:
    for band in BANDS:
        expected = reference[f"val_ce_{band}"]
        got = values[f"{prefix}ce_{band}"]
        if np.isnan(expected):
            assert np.isnan(got), band
        else:
            assert got == pytest.approx(expected, rel=1e-5), band
        assert values[f"{prefix}share_{band}"] == pytest.approx(reference[f"val_share_{band}"], abs=1e-12), band
    assert sum(values[f"{prefix}share_{band}"] for band in BANDS) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("head", ["softmax", "linear"])
def test_the_evaluator_gives_each_bands_cross_entropy_and_share_on_a_table_model(head):
    """A 'model' with given outputs: the per-band sums over batches of 7 equal NumPy's means, an empty band is NaN
    with share 0, and the share-weighted bands give back the whole cross-entropy."""
    rng = np.random.default_rng(1)
    vocab, n = 12, 101
    outputs = (rng.normal(0, 2, (n, vocab)) if head == "softmax" else rng.uniform(-0.2, 1.3, (n, vocab))
               ).astype(np.float32)
    bands = word_bands(labels_from({1: 9, 2: 5, 3: 4, 4: 3, 5: 2, 6: 1, 7: 1}), vocab)  # 8 .. 11 unseen
    labels = rng.choice([1, 2, 3, 4, 5, 6, 7, 9, 11], size=n).astype(np.int32)
    x = np.arange(n, dtype=np.int32)[:, None]
    loss = keras_loss("cross_entropy") if head == "softmax" else keras_loss("mse")
    values = ValidationEvaluator(x, labels, loss, head, batch_size=7, bands=bands).evaluate(table_model(outputs))
    from entropylab.metrics import log_distribution

    log_p = keras.ops.convert_to_numpy(log_distribution(outputs, head))
    assert_band_metrics(values, per_band_reference(log_p, labels, bands))
    assert values["val_cross_entropy"] == pytest.approx(
        sum(values[f"val_share_{b}"] * values[f"val_ce_{b}"] for b in BANDS), rel=1e-6)
    # no label in the middle band: NaN, share 0
    middle = np.flatnonzero(bands == MIDDLE)
    kept = ~np.isin(labels, middle)
    empty = ValidationEvaluator(x[kept], labels[kept], loss, head, bands=bands).evaluate(table_model(outputs))
    assert np.isnan(empty["val_ce_middle"]) and empty["val_share_middle"] == 0.0
    assert np.isfinite(empty["val_ce_rare"])
    # without bands, no band metric (an evaluator built as before)
    plain = ValidationEvaluator(x, labels, loss, head).evaluate(table_model(outputs))
    assert not [k for k in plain if k.startswith(("val_ce_", "val_share_"))]


QUICK = {"dataset": "synthetic", "epochs": 2, "max_sequences": 600, "lstm_units": 16, "batch_size": 32,
         "synthetic": {"n_headlines": 300, "n_words": 60, "branching": 5, "seed": 3}, "jit_compile": False}


def test_a_runs_band_metrics_equal_numpy_on_its_models_log_probabilities_on_both_sides():
    """A trained run with a test side: its last epoch's ``val_ce_<band>`` and its ``test_ce_<band>`` are NumPy's
    means of ``-log p_t`` from the model's log-softmax, the bands made from its training split's labels."""
    from entropylab.training import RunConfig, run
    from entropylab.training.train import run_split

    result = run(RunConfig(**QUICK, loss="cross_entropy", seed=2, test_fraction=0.2))
    data = run_split(result.corpus, result.config)
    bands = word_bands(data.y_train, result.corpus.vocab_size)
    last = result.history.iloc[-1].to_dict()
    for x, y, values, prefix in ((data.x_val, data.y_val, last, "val_"),
                                 (data.x_test, data.y_test, result.metrics["test"], "test_")):
        log_p = keras.ops.convert_to_numpy(keras.ops.log_softmax(result.model(x, training=False), axis=-1))
        reference = per_band_reference(log_p, y, bands)
        assert_band_metrics(values, reference, prefix)
        assert sum(not np.isnan(reference[f"val_ce_{b}"]) for b in BANDS) >= 3  # the check is not vacuous
    assert result.metrics["word_bands"] == band_summary(bands, data.y_train)
    assert result.metrics["word_bands"]["frequent"]["words"] < result.metrics["word_bands"]["rare"]["words"]
    assert [c for c in result.history.columns if c.startswith("val_ce_")] == [f"val_ce_{b}" for b in BANDS]


# -- the fused group's evaluator (JAX) ---------------------------------------------------------------------------------

GROUP_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import jax.numpy as jnp
    from entropylab.metrics import word_bands
    from entropylab.metrics.validation import GroupEvaluator, ValidationEvaluator
    from entropylab.model import build_model
    from entropylab.objectives import keras_loss

    out = {}
    rng = np.random.default_rng(0)
    x = rng.integers(0, 30, size=(203, 5)).astype("int32")
    y = rng.integers(1, 30, size=203).astype("int32")
    bands = word_bands(rng.zipf(1.5, size=400).clip(1, 25), 30)  # ids 26 .. 29 never in training: unseen
    for head in ("softmax", "linear"):
        model = build_model(30, 5, embedding_dim=4, lstm_units=8, head=head)
        loss = keras_loss("cross_entropy") if head == "softmax" else keras_loss("mse")
        alone = ValidationEvaluator(x, y, loss, head, batch_size=32, bands=bands).evaluate(model)
        group = GroupEvaluator(model, x, y, lambda row: loss, head, batch_size=32, runs=2, bands=bands)
        stack = lambda variables: [jnp.stack([v.value, v.value]) for v in variables]
        fused = group.evaluate(stack(model.trainable_variables), stack(model.non_trainable_variables),
                               jnp.zeros((2, 1)))
        out[head] = {"alone": alone, "fused": [means for means, _ in fused]}
    print("RESULT=" + json.dumps(out))
""")


@pytest.mark.skipif(not backend_available("jax"), reason="JAX not installed (pip install -e '.[jax]')")
def test_the_fused_groups_evaluator_gives_the_one_run_evaluators_bands():
    result = run_jax_script(GROUP_SCRIPT)
    for head, sides in result.items():
        alone = sides["alone"]
        assert all(np.isfinite(alone[f"val_ce_{b}"]) and alone[f"val_share_{b}"] > 0 for b in BANDS), head
        assert len(sides["fused"]) == 2
        for fused in sides["fused"]:
            assert fused.keys() == alone.keys()
            for band in BANDS:
                assert fused[f"val_ce_{band}"] == pytest.approx(alone[f"val_ce_{band}"], rel=1e-5), (head, band)
                assert fused[f"val_share_{band}"] == alone[f"val_share_{band}"], (head, band)


# -- the band table of the objectives study ----------------------------------------------------------------------------

SEEDS = range(6)


def _planted_results() -> pd.DataFrame:
    """Two settings, cross-entropy and two objectives, six seeds sharing a seed effect. On nyt/tail, label smoothing
    is planted 0.3 nats better on rare words only; confidence penalty is a noisy zero everywhere. The test side is
    reported; its ``val_`` columns are planted the other way round (they must not be read)."""
    rng = np.random.default_rng(0)
    base = {b: 2.0 + i + rng.normal(0, 0.2, len(SEEDS)) for i, b in enumerate(BANDS)}
    shares = {"frequent": 0.5, "middle": 0.3, "rare": 0.19, "unseen": 0.01}
    rows = []
    for setting in ("tail", "headline"):
        for objective, weight in (("cross_entropy", 0.0), ("label_smoothing", 0.1), ("confidence_penalty", 0.5)):
            for seed in SEEDS:
                row = {"dataset": "nyt", "split": setting, "objective": objective, "weight": weight, "seed": seed,
                       "test_cross_entropy": 3.0}
                for band in BANDS:
                    shift = -0.3 if (objective, band, setting) == ("label_smoothing", "rare", "tail") else 0.0
                    noise = rng.normal(0, 0.01)
                    row[f"test_ce_{band}"] = base[band][seed] + shift + noise
                    row[f"val_ce_{band}"] = base[band][seed] - shift + noise
                    row[f"test_share_{band}"] = row[f"val_share_{band}"] = shares[band]
                rows.append(row)
    return pd.DataFrame(rows)


def test_the_band_table_finds_the_objective_planted_better_on_rare_words_only():
    from entropylab.studies.objectives.tables import BAND_TABLE_COLUMNS, band_table

    table = band_table(_planted_results())
    assert list(table.columns) == ["dataset", "split", *BAND_TABLE_COLUMNS]
    assert len(table) == 2 * 2 * len(BANDS) and (table["side"] == "test").all() and (table["n_seeds"] == 6).all()
    found = table[table["p_holm"] < 0.05]  # what the table finds, Holm-corrected over its setting's comparisons
    assert found[["split", "objective", "band"]].values.tolist() == [["tail", "label_smoothing", "rare"]]
    found = found.iloc[0]
    assert found["delta"] == pytest.approx(-0.3, abs=0.02) and found["delta_high"] < 0
    assert found["ce"] - found["baseline_ce"] == pytest.approx(found["delta"])
    assert found["share"] == pytest.approx(0.19)
    assert (table["p_holm"] >= table["p"] - 1e-15).all()


def test_the_band_table_groups_by_extra_columns_and_refuses_what_it_cannot_pair():
    from entropylab.studies.objectives.tables import band_table

    results = _planted_results()
    wider = pd.concat([results.assign(lstm_units=units) for units in (8, 16)], ignore_index=True)
    table = band_table(wider, group_by=("dataset", "split", "lstm_units"))
    assert len(table) == 2 * len(band_table(results))
    assert set(table["lstm_units"]) == {8, 16}
    with pytest.raises(ValueError, match="one row per run"):
        band_table(pd.concat([results, results]))
    with pytest.raises(ValueError, match="groups by column"):
        band_table(results, group_by=("dataset", "embedding_dim"))
    with pytest.raises(ValueError, match="trained before the word-frequency bands"):
        band_table(results.drop(columns=[c for c in results.columns if "_ce_" in c]))
    # without a test side the validation side is read (planted the other way round there)
    two_sided = band_table(results.drop(columns=[c for c in results.columns if c.startswith("test_")]))
    rare = two_sided.set_index(["split", "objective", "band"]).loc[("tail", "label_smoothing", "rare")]
    assert rare["side"] == "val" and rare["delta"] == pytest.approx(0.3, abs=0.02)
