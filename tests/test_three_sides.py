"""Three sides (issue 21): train / dev / test with no row, and no cleaned headline, on two sides; the two-sided
split unchanged at ``test_fraction = 0``; a run with a test side reads it once and reports it."""

import numpy as np
import pytest

from entropylab.data import Corpus, corpus_from_headlines
from entropylab.training.config import RunConfig

DUPLICATED = (["Variety: Acrostic", "variety acrostic", "VARIETY — ACROSTIC!"] * 2
              + [f"headline number {i} of the day" for i in range(40)]
              + ["Homes for Sale in Manhattan", "homes for sale in manhattan"])


def _sides(split) -> list[np.ndarray]:
    return [split.train_index, split.val_index, split.test_index]


def _assert_disjoint_and_complete(corpus: Corpus, split) -> None:
    sides = _sides(split)
    for a in range(3):
        for b in range(a + 1, 3):
            assert not set(sides[a].tolist()) & set(sides[b].tolist()), (a, b)
    np.testing.assert_array_equal(np.sort(np.concatenate(sides)), np.arange(corpus.n_sequences))
    np.testing.assert_array_equal(split.x_test, corpus.X[split.test_index])
    np.testing.assert_array_equal(split.y_test, corpus.y[split.test_index])
    np.testing.assert_array_equal(split.y_val, corpus.y[split.val_index])


@pytest.mark.parametrize("seed", range(8))
def test_headline_sides_share_no_row_and_no_cleaned_text(seed):
    corpus = corpus_from_headlines("dup", DUPLICATED)
    split = corpus.split("headline", 0.2, seed, test_fraction=0.2)
    _assert_disjoint_and_complete(corpus, split)
    texts = corpus.cleaned_texts()
    on_side = [{texts[h] for h in corpus.headline_index[index]} for index in _sides(split)]
    assert not on_side[0] & on_side[1] and not on_side[0] & on_side[2] and not on_side[1] & on_side[2]
    owners = len(set(corpus.headline_index.tolist()))
    test_h = len(set(corpus.headline_index[split.test_index].tolist()))
    held_h = test_h + len(set(corpus.headline_index[split.val_index].tolist()))
    assert test_h >= 0.2 * owners and held_h >= 0.4 * owners
    assert split.has_test and split.test_fraction == 0.2


def test_the_synthetic_corpus_three_sides_by_index(small_synthetic):
    for seed in (0, 1, 2):
        split = small_synthetic.split("headline", 0.2, seed, test_fraction=0.2)
        _assert_disjoint_and_complete(small_synthetic, split)
        owner = small_synthetic.headline_index
        assert not set(owner[split.test_index]) & set(owner[split.train_index])
        assert not set(owner[split.test_index]) & set(owner[split.val_index])


def test_tail_sides_are_in_time_order(small_synthetic):
    n = small_synthetic.n_sequences
    split = small_synthetic.split("tail", 0.2, test_fraction=0.1)
    _assert_disjoint_and_complete(small_synthetic, split)
    assert split.train_index.max() < split.val_index.min() <= split.val_index.max() < split.test_index.min()
    assert len(split.y_test) == n - int(np.floor(n * 0.9))
    assert len(split.y_train) == int(np.floor(n * 0.7))


@pytest.mark.parametrize("mode", ["tail", "headline"])
def test_no_test_side_is_the_two_sided_split(small_synthetic, mode):
    """At ``test_fraction = 0`` the validation side is the earlier rule's: the paper's protocol keeps its split."""
    two = small_synthetic.split(mode, 0.2, 3)
    assert not two.has_test and len(two.test_index) == 0
    if mode == "tail":
        n = small_synthetic.n_sequences
        np.testing.assert_array_equal(two.val_index, np.arange(int(np.floor(n * 0.8)), n))
    else:  # the test side's groups come first in the permutation: the same seed's validation groups follow them
        three = small_synthetic.split(mode, 0.2, 3, test_fraction=0.2)
        first = set(small_synthetic.headline_index[two.val_index].tolist())
        assert first <= set(small_synthetic.headline_index[three.test_index].tolist()) | \
            set(small_synthetic.headline_index[three.val_index].tolist())


def test_bad_test_fractions_are_refused(small_synthetic):
    with pytest.raises(ValueError, match="test fraction"):
        small_synthetic.split("tail", 0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="test_fraction"):
        RunConfig(dataset="synthetic", loss="cross_entropy", val_fraction=0.5, test_fraction=0.6)
    with pytest.raises(ValueError, match="test_fraction"):
        RunConfig(dataset="synthetic", loss="cross_entropy", test_fraction=-0.1)


def test_split_seed_from_the_seed_and_identity():
    config = RunConfig(dataset="synthetic", loss="cross_entropy", seed=4, split_seed="seed", test_fraction=0.2)
    assert config.split_seed == 4
    assert config.identity()["test_fraction"] == 0.2
    assert "test_fraction" not in RunConfig(dataset="synthetic", loss="cross_entropy").identity()


def test_a_run_with_a_test_side_reads_it_once_and_reports_it(tmp_path):
    """Early stopping and the best epoch come from dev (``val_*``); test is measured once, on the kept weights; the
    references are scored on test with the Kneser-Ney order chosen on dev; the results table carries ``test_*``."""
    from entropylab.experiments.results import collect
    from entropylab.metrics.references import ngram_references
    from entropylab.training import run
    from entropylab.training.train import run_split

    config = RunConfig(dataset="synthetic", epochs=2, max_sequences=600, lstm_units=16, batch_size=32,
                       jit_compile=False, loss="cross_entropy", seed=1, split="headline", split_seed="seed",
                       test_fraction=0.2, patience=1, generation_prefixes=20,
                       synthetic={"n_headlines": 300, "n_words": 60, "branching": 5, "seed": 3})
    folder = tmp_path / "runs" / "three" / config.run_name
    result = run(config, folder)
    assert result.status == "complete"
    test = result.metrics["test"]
    assert {"test_cross_entropy", "test_ece", "test_accuracy", "test_true_kl", "test_entropy_floor"} <= set(test)
    data = run_split(result.corpus, config)
    assert result.metrics["split_sizes"] == {"train": len(data.y_train), "val": len(data.y_val),
                                             "test": len(data.y_test)}
    # dev is not test: the best epoch's dev cross-entropy differs from the test one
    assert test["test_cross_entropy"] != pytest.approx(result.metrics["best"]["val_cross_entropy"], abs=1e-9)
    expected = ngram_references(data.y_train, data.x_train, data.y_test, data.x_test, result.corpus.vocab_size,
                                kneser_ney=True, heldout=(data.y_val, data.x_val))
    assert result.metrics["references"] == pytest.approx(expected)
    assert result.metrics["test_reliability"]["bin_count"]
    # a tuning run with a test side is judged on the same dev side (no carve of training)
    tuned = run_split(result.corpus, config.replace(tuning=True))
    np.testing.assert_array_equal(tuned.val_index, data.val_index)
    np.testing.assert_array_equal(tuned.test_index, data.test_index)
    table = collect("three", tmp_path, write=False)
    assert (table["test_cross_entropy"] == test["test_cross_entropy"]).all()
    assert (table["ref_kneser_ney_order"] == expected["kneser_ney_order"]).all()
    assert (table["test_fraction"] == 0.2).all() and (table["split_seed"] == 1).all()
