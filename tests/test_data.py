import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from entropylab.data import (
    DataError,
    UnknownWordsWarning,
    build_vocabulary,
    clean_headline,
    corpus_from_headlines,
    find_nyt_dir,
    load_corpus,
    missing_data_message,
)


def test_loader_regression_numbers_on_the_real_files(nyt_corpus):
    """The four numbers of DESIGN.md §3 / SOURCE.md."""
    assert len(nyt_corpus.headlines) == 8603
    assert nyt_corpus.vocab_size == 11265
    assert nyt_corpus.max_len == 24
    assert nyt_corpus.n_sequences == 51770
    assert nyt_corpus.X.shape == (51770, 23) and nyt_corpus.X.dtype == np.int32
    assert nyt_corpus.y.shape == (51770,) and nyt_corpus.y.dtype == np.int32


def test_files_read_in_chronological_order(nyt_dir):
    first = pd.read_csv(Path(nyt_dir) / "ArticlesJan2017.csv")["headline"]
    from entropylab.data import read_headlines

    headlines = read_headlines(nyt_dir)
    assert headlines[0] == next(h for h in first if h != "Unknown")
    assert "Unknown" not in headlines


def test_cleaning_drops_punctuation_case_and_non_ascii():
    assert clean_headline("Trump’s “Big” Day: A Test!") == "trumps big day a test"
    assert not set(clean_headline(string.punctuation))


def test_vocabulary_orders_by_frequency_then_first_occurrence():
    vocab = build_vocabulary([["b", "a", "c"], ["a", "c"], ["d"]])
    assert vocab == {"a": 1, "c": 2, "b": 3, "d": 4}


def test_prefix_sequences_are_left_padded_with_integer_labels():
    corpus = corpus_from_headlines("t", ["a b c", "b a"])
    # words: a(2), b(2) -> a=1, b=2, c=3
    assert corpus.max_len == 3
    np.testing.assert_array_equal(corpus.X, [[0, 1], [1, 2], [0, 2]])
    np.testing.assert_array_equal(corpus.y, [2, 3, 1])
    assert corpus.decode([0, 1, 3]) == ["a", "c"]


def test_tail_split_matches_keras_validation_split(nyt_corpus):
    split = nyt_corpus.split("tail", 0.2)
    assert split.sizes == (41416, 10354)
    np.testing.assert_array_equal(split.x_val, nyt_corpus.X[41416:])


def test_headline_split_keeps_each_headline_on_one_side(small_synthetic):
    split = small_synthetic.split("headline", 0.2, seed=5)
    owner = small_synthetic.headline_index
    assert not set(owner[split.train_index]) & set(owner[split.val_index])
    assert sum(split.sizes) == small_synthetic.n_sequences
    again = small_synthetic.split("headline", 0.2, seed=5)
    np.testing.assert_array_equal(split.val_index, again.val_index)
    other = small_synthetic.split("headline", 0.2, seed=6)
    assert not np.array_equal(split.val_index, other.val_index)


def test_bad_split_arguments_are_clear(small_synthetic):
    with pytest.raises(ValueError, match="tail, headline"):
        small_synthetic.split("random")
    with pytest.raises(ValueError, match="between 0 and 1"):
        small_synthetic.split("tail", 1.5)


def test_missing_folder_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="make data"):
        load_corpus("nyt", tmp_path / "nowhere")
    with pytest.raises(DataError, match="no Articles"):
        load_corpus("nyt", tmp_path)


def test_wrong_column_names_the_fix(tmp_path):
    pd.DataFrame({"commentBody": ["x"]}).to_csv(tmp_path / "ArticlesJan2017.csv", index=False)
    with pytest.warns(UserWarning, match="1 Articles"), pytest.raises(DataError, match="no column 'headline'"):
        load_corpus("nyt", tmp_path)


def test_fallback_to_synthetic_is_announced(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ENTROPYLAB_DATA", str(tmp_path / "none"))
    monkeypatch.setattr("entropylab.data.candidate_data_dirs", lambda: [tmp_path / "none"])
    corpus = load_corpus("nyt", fallback=True)
    assert corpus.name == "synthetic"
    assert "SYNTHETIC" in capsys.readouterr().out
    assert "make data" in missing_data_message()


def test_environment_variable_is_searched_first(monkeypatch, nyt_dir):
    monkeypatch.setenv("ENTROPYLAB_DATA", str(nyt_dir))
    assert find_nyt_dir(None) == Path(nyt_dir)


def test_encode_warns_on_unknown_words(nyt_corpus):
    with pytest.warns(UnknownWordsWarning, match="zzqxv"):
        ids = nyt_corpus.encode("New York zzqxv")
    assert nyt_corpus.decode(ids) == ["new", "york"]
    with pytest.raises(KeyError, match="zzqxv"):
        nyt_corpus.encode("zzqxv", on_unknown="raise")


def test_unknown_corpus_name():
    with pytest.raises(ValueError, match="'nyt' or 'synthetic'"):
        load_corpus("wiki")
