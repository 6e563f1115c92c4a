import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from keras.src.trainers.data_adapters.array_slicing import train_validation_split

from entropylab.data import (
    Corpus,
    DataError,
    Split,
    UnknownWordsWarning,
    build_vocabulary,
    clean_headline,
    corpus_from_headlines,
    find_nyt_dir,
    load_corpus,
    missing_data_message,
    tokenize,
)
from entropylab.data.stats import split_table


def test_loader_regression_numbers_on_the_real_files(nyt_corpus):
    """The loader's four regression numbers on the nine NYT files."""
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
    (x_train, y_train), (x_val, y_val) = train_validation_split((nyt_corpus.X, nyt_corpus.y), 0.2)
    for ours, keras_side in zip((split.x_train, split.y_train, split.x_val, split.y_val),
                                (x_train, y_train, x_val, y_val), strict=True):
        np.testing.assert_array_equal(ours, keras_side)


def _numbered_corpus(n: int) -> Corpus:
    """A corpus of ``n`` sequences whose row ``i`` holds ``i`` (one headline per sequence)."""
    rows = np.arange(n, dtype=np.int32)
    return Corpus("numbered", [f"w{i} v{i}" for i in range(n)], {}, 2, rows.reshape(n, 1), rows, rows.copy())


@pytest.mark.parametrize("n", [2, 3, 7, 10, 51, 400, 1234, 51770])
@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.25, 0.3, 0.6])
def test_tail_split_is_what_keras_validation_split_takes(n, fraction):
    """Keras 3's own ``train_validation_split`` decides: same rows on each side, or an error for both."""
    corpus = _numbered_corpus(n)
    try:
        (x_train, _), (x_val, y_val) = train_validation_split((corpus.X, corpus.y), fraction)
    except ValueError:
        with pytest.raises(DataError, match="empty side"):
            corpus.split("tail", fraction)
        return
    split = corpus.split("tail", fraction)
    np.testing.assert_array_equal(split.x_train, x_train)
    np.testing.assert_array_equal(split.x_val, x_val)
    np.testing.assert_array_equal(split.y_val, y_val)
    np.testing.assert_array_equal(split.train_index, x_train[:, 0])
    np.testing.assert_array_equal(split.val_index, x_val[:, 0])
    assert split.seed is None


def test_headline_split_keeps_each_headline_on_one_side(small_synthetic):
    split = small_synthetic.split("headline", 0.2, seed=5)
    owner = small_synthetic.headline_index
    assert not set(owner[split.train_index]) & set(owner[split.val_index])
    assert sum(split.sizes) == small_synthetic.n_sequences
    again = small_synthetic.split("headline", 0.2, seed=5)
    np.testing.assert_array_equal(split.val_index, again.val_index)
    other = small_synthetic.split("headline", 0.2, seed=6)
    assert not np.array_equal(split.val_index, other.val_index)


def _cleaned(corpus: Corpus) -> list[str]:
    return [" ".join(tokenize(clean_headline(h))) for h in corpus.headlines]


def _texts_on_both_sides(corpus: Corpus, split: Split) -> set[str]:
    texts = _cleaned(corpus)
    train = {texts[h] for h in corpus.headline_index[split.train_index]}
    return train & {texts[h] for h in corpus.headline_index[split.val_index]}


#: Copies of one headline differ in case and punctuation only; the split must see them as one text.
DUPLICATED = (["Variety: Acrostic", "variety acrostic", "VARIETY — ACROSTIC!", "Variety Acrostic"] * 2
              + ["A Little Variety", "a little variety.", "A little Variety"]
              + [f"headline number {i} of the day" for i in range(13)]
              + ["Homes for Sale in Manhattan", "homes for sale in manhattan"])


@pytest.mark.parametrize("seed", range(12))
def test_headline_split_keeps_every_copy_of_a_cleaned_headline_on_one_side(seed):
    corpus = corpus_from_headlines("dup", DUPLICATED)
    split = corpus.split("headline", 0.2, seed)
    assert not _texts_on_both_sides(corpus, split)
    assert sum(split.sizes) == corpus.n_sequences
    # the rule: whole groups of copies, the fewest that make at least 20 % of the headlines
    texts = _cleaned(corpus)
    assert texts == corpus.cleaned_texts()
    val_h = set(corpus.headline_index[split.val_index].tolist())
    group_size = {t: texts.count(t) for t in texts}
    target = 0.2 * len(set(corpus.headline_index.tolist()))
    assert len(val_h) >= target
    assert min(len(val_h) - group_size[texts[h]] for h in val_h) < target


def test_headline_split_of_the_nyt_corpus_shares_no_cleaned_text(nyt_corpus):
    for seed in (0, 1, 2):
        split = nyt_corpus.split("headline", 0.2, seed)
        assert not _texts_on_both_sides(nyt_corpus, split)
        val_h = set(nyt_corpus.headline_index[split.val_index].tolist())
        assert 0.2 <= len(val_h) / len(set(nyt_corpus.headline_index.tolist())) < 0.21
    table = split_table(nyt_corpus, 0.2, 0).set_index("mode")
    assert table.loc["headline", "cleaned texts on both sides"] == 0
    assert table.loc["headline", "headlines on both sides"] == 0
    assert table.loc["tail", "cleaned texts on both sides"] > 0  # reported: copies of a text in both halves
    assert table.loc["tail", "train"] == 41416


def test_headline_split_records_its_integer_seed(small_synthetic):
    split = small_synthetic.split("headline", 0.2, seed=np.int64(7))
    assert split.seed == 7 and type(split.seed) is int
    np.testing.assert_array_equal(split.val_index, small_synthetic.split("headline", 0.2, seed=7).val_index)
    assert small_synthetic.split("tail", 0.2, seed=7).seed is None
    with pytest.raises(ValueError, match="integer seed"):
        small_synthetic.split("headline", 0.2, seed=None)


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
    monkeypatch.delenv("ENTROPYLAB_DATA", raising=False)
    monkeypatch.setattr("entropylab.data.nyt.candidate_data_dirs", lambda: [tmp_path / "none"])
    corpus = load_corpus("nyt", fallback=True)
    assert corpus.name == "synthetic"
    assert "SYNTHETIC" in capsys.readouterr().out
    assert "make data" in missing_data_message()


@pytest.mark.parametrize("exists", [False, True])
def test_environment_variable_naming_a_wrong_folder_is_an_error(monkeypatch, tmp_path, nyt_dir, exists):
    """No silent fall back to the default folders (they hold the NYT files here)."""
    folder = tmp_path / "typo"
    if exists:
        folder.mkdir()
    monkeypatch.setenv("ENTROPYLAB_DATA", str(folder))
    problem = "holds no Articles" if exists else "does not exist"
    with pytest.raises(DataError, match=rf"\$ENTROPYLAB_DATA names the folder .*typo, which {problem}.*unset it"):
        find_nyt_dir(None)
    with pytest.raises(DataError, match="ENTROPYLAB_DATA"):
        load_corpus("nyt", fallback=True)


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
    with pytest.raises(ValueError, match="'nyt', 'synthetic' or 'hidden_state'"):
        load_corpus("wiki")


def test_corpus_statistics_and_figures(nyt_corpus):
    import matplotlib.pyplot as plt

    from entropylab.data.figures import headline_length_figure, zipf_figure
    from entropylab.data.stats import NYT_EXPECTED_COUNTS, corpus_counts, headline_lengths, word_counts, zipf_exponent

    assert corpus_counts(nyt_corpus)["count"].to_dict() == NYT_EXPECTED_COUNTS
    assert headline_lengths(nyt_corpus).max() == nyt_corpus.max_len
    counts = word_counts(nyt_corpus)
    assert len(counts) == nyt_corpus.vocab_size - 1 and (np.diff(counts) <= 0).all()
    assert 0.5 < zipf_exponent(counts) < 1.5
    for figure in (headline_length_figure(nyt_corpus), zipf_figure(nyt_corpus)):
        assert figure.axes
        plt.close(figure)


def test_package_reexports_the_public_names():
    import entropylab.data as data

    for name in ("load_corpus", "Corpus", "corpus_from_headlines", "find_nyt_dir", "SPLIT_MODES", "DataError",
                 "UnknownWordsWarning", "clean_headline", "tokenize", "build_vocabulary", "prefix_sequences",
                 "missing_data_message", "resolve_dataset", "article_files", "read_headlines", "candidate_data_dirs",
                 "DATA_ENV_VAR", "KAGGLE_DATASET", "load_nyt", "Split"):
        assert name in data.__all__ and hasattr(data, name), name
