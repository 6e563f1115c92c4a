"""The decoding study's quality columns (``possible_loglik`` beside ``impossible``) on a hand-made case, and the
study file refusing one sampling seed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from entropylab.experiments.params import ParamsError, load_params
from entropylab.metrics.generation import possible_log_likelihood, true_log_likelihood
from entropylab.studies.decoding.grid import cell_metrics
from entropylab.studies.decoding.spec import read_spec

# -- the two quality columns ----------------------------------------------------------------------------------

#: A source over words 1..3 whose next-word law depends on the previous word only (rows: previous word).
LAW = np.array([[0.0, 0.0, 0.0, 0.0],
                [0.0, 0.5, 0.5, 0.0],    # after 1: 1 or 2, never 3
                [0.0, 0.0, 0.25, 0.75],  # after 2: 2 or 3, never 1
                [0.0, 0.1, 0.0, 0.9]])   # after 3: 1 or 3, never 2


def test_possible_loglik_is_the_mean_ln_q_of_the_words_the_source_can_emit():
    previous = np.array([[1, 2, 2], [3, 1, 3]])  # the last prefix word, then each generated word
    words = np.array([[2, 2, 1], [1, 3, 2]])
    q = LAW[previous, words]
    assert q.tolist() == [[0.5, 0.25, 0.0], [0.1, 0.0, 0.0]]  # three of the six words are impossible
    row = cell_metrics(words, np.ones(words.shape), np.full(4, 0.25), q)
    hand = (math.log(0.5) + math.log(0.25) + math.log(0.1)) / 3
    assert row["possible_loglik"] == pytest.approx(hand)
    assert row["impossible"] == pytest.approx(3 / 6)
    assert row["true_loglik"] == pytest.approx((3 * hand + 3 * math.log(1e-10)) / 6)  # kept, with its floor
    assert possible_log_likelihood(q) == pytest.approx(hand)
    assert math.isnan(possible_log_likelihood(np.zeros((2, 3))))  # nothing the source can emit: no quality
    loglik, impossible = true_log_likelihood(np.array([0.5, 0.5]))
    assert possible_log_likelihood(np.array([0.5, 0.5])) == pytest.approx(loglik) and impossible == 0.0


# -- one sampling seed ---------------------------------------------------------------------------------------

def test_one_sampling_seed_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "one.yaml"
    path.write_text("experiment: one\nruns:\n  - notebook: notebooks/07_objectives_train.ipynb\n"
                    "    grid: {loss: cross_entropy}\n"
                    "decoding: {decoders: {top_p: [0.9]}, models: [{name: a, loss: cross_entropy}], "
                    "sampling_seeds: [3]}\n")
    with pytest.raises(ParamsError) as caught:
        read_spec(load_params(path))
    message = str(caught.value)
    assert message == (f"{path}: decoding.sampling_seeds: got [3]; expected at least 2 distinct seeds, e.g. [0, 1]: "
                       "the matched-diversity table calls a gap a tie by the standard error over sampling seeds, "
                       "which one seed cannot give")
    path.write_text(path.read_text().replace("[3]", "[3, 4]"))
    assert read_spec(load_params(path)).sampling_seeds == (3, 4)
