"""The decoder registry: a new decoder is one new file in ``entropylab/decoding/``. A toy module, written to a
temporary folder that is made part of the package, registers a strategy and a sampling transform; importing the
package's modules (``discover``) finds it, and the toy decoders then appear in the registry, a decoding study's
plan, the explorer's decoder selector, and decode a batch through the one generate path."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

import entropylab.decoding as decoding
from entropylab.decoding import (
    DECODERS,
    check_decoder,
    continue_prefixes,
    deterministic_decoders,
    filter_batch,
    get_decoder,
    registry,
    restoring,
    unregister,
)

TOY = textwrap.dedent('''
    """Toy decoders: the rank-th most likely word (deterministic), and Top-a sampling's cut."""
    import numpy as np

    from entropylab.decoding.registry import Parameter, Slider, register_strategy, register_transform

    RANK = Parameter("rank", 2, "an integer >= 1", lambda r: r >= 1, integer=True)


    @register_strategy("runner_up", parameters=(RANK,), slider=Slider(1, 5, 1, 2), deterministic=True)
    def runner_up(params, rows):
        def step(s):
            order = np.argsort(-s.p, axis=1, kind="stable")
            return order[:, params["rank"] - 1], None
        return step


    @register_transform(Parameter("top_a", 0.0, "in [0, 1] (0 = off)", lambda a: 0 <= a <= 1),
                        Slider(0.0, 1.0, 0.05, 0.2))
    def keep_top_a(p, a):
        """Keep p_j >= a * (max p)^2."""
        keep = p >= a * p.max(axis=1, keepdims=True) ** 2
        out = np.where(keep, p, 0.0)
        return out / out.sum(axis=1, keepdims=True)
''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy module as a file of the package (a second folder of its ``__path__``), discovered, then removed."""
    (tmp_path / "toy_decoders.py").write_text(TOY)
    monkeypatch.setattr(decoding, "__path__", [*decoding.__path__, str(tmp_path)])
    with restoring():
        try:
            assert "toy_decoders" in decoding.discover()
            yield sys.modules["entropylab.decoding.toy_decoders"]
        finally:
            sys.modules.pop("entropylab.decoding.toy_decoders", None)
    assert "runner_up" not in DECODERS and "top_a" not in DECODERS  # restoring() undid the registrations


def rows_model(table):
    table = np.asarray(table, dtype=np.float64)
    return lambda x, training=False: table[np.asarray(x)[:, -1]]


def test_a_toy_file_registers_its_decoders(toy):
    runner_up, top_a = get_decoder("runner_up"), get_decoder("top_a")
    assert (runner_up.strategy, runner_up.parameter, runner_up.integer, runner_up.deterministic) == \
        ("runner_up", "rank", True, True)
    assert (top_a.strategy, top_a.parameter, top_a.default, top_a.deterministic) == ("sample", "top_a", 0.2, False)
    assert "runner_up" in deterministic_decoders() and "top_a" not in deterministic_decoders()
    assert runner_up.describe(3) == "runner_up rank=3" and top_a.describe(None) == "top_a=0.2"
    assert check_decoder("runner_up") == {"rank": 2}
    assert check_decoder("sample", top_a=0.5)["top_a"] == 0.5  # the sample strategy takes every transform
    with pytest.raises(ValueError, match=r"rank must be an integer >= 1, got 0"):
        check_decoder("runner_up", rank=0)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_strategy("runner_up")(toy.runner_up)


def test_a_toy_decoder_decodes_a_batch_through_the_generate_path(toy):
    # the model's next-word distribution is the row of its last context word
    table = np.array([[0.0, 0.6, 0.05, 0.05, 0.3], [0.0, 0.1, 0.5, 0.3, 0.1], [0.0, 0.6, 0.05, 0.05, 0.3],
                      [0.0, 0.2, 0.1, 0.4, 0.3], [0.0, 0.25, 0.35, 0.3, 0.1]])
    model = rows_model(np.log(np.maximum(table, 1e-30)))
    result = continue_prefixes(model, np.array([[0, 1], [0, 2]]), 3, head="softmax", strategy="runner_up")
    # after 1 the runner-up is 3 (0.3 after 0.5), after 3 it is 4, after 4 it is 3; after 2: 4, 3, 4
    assert result.words.tolist() == [[3, 4, 3], [4, 3, 4]]
    assert result.surprisal[0] == pytest.approx(-np.log([0.3, 0.3, 0.3]))
    third = continue_prefixes(model, np.array([[0, 1]]), 1, head="softmax", strategy="runner_up", rank=3)
    assert third.words.tolist() == [[1]]  # 0.1 twice (words 1 and 4): the lower index
    # the transform: a = 0.8 keeps p_j >= 0.8 (max p)^2: 0.5 and 0.3 of row 1 (>= 0.2), 0.6 and 0.3 of row 2 (0.288)
    assert np.allclose(filter_batch(table[1:3], top_a=0.8), [[0, 0, 0.625, 0.375, 0], [0, 2 / 3, 0, 0, 1 / 3]])
    sampled = continue_prefixes(model, np.zeros((200, 2), dtype=np.int32), 1, head="softmax", strategy="sample",
                                seed=0, top_a=0.8)
    assert set(sampled.words[:, 0].tolist()) == {1, 4}


def test_a_toy_decoder_is_planned_by_a_decoding_study(toy, tmp_path):
    from entropylab.experiments.params import ParamsError, load_params
    from entropylab.studies.decoding.spec import read_spec

    def spec_of(decoders: str):
        path = tmp_path / "toy.yaml"
        path.write_text("experiment: toy\nruns:\n  - notebook: notebooks/07_objectives_train.ipynb\n"
                        "    grid: {loss: cross_entropy}\n"
                        f"decoding: {{sampling_seeds: [0, 1, 2], decoders: {decoders}, "
                        "models: [{name: a, loss: cross_entropy}]}\n")
        return read_spec(load_params(path))

    cells = spec_of("{greedy: [], runner_up: [2, 3], top_a: [0.1, 0.5]}").cells()
    assert [c for c in cells if c[0] == "runner_up"] == [("runner_up", 2, 0), ("runner_up", 3, 0)]  # run once
    assert [c for c in cells if c[0] == "top_a"] == [("top_a", v, s) for v in (0.1, 0.5) for s in (0, 1, 2)]
    with pytest.raises(ParamsError, match=r"decoding.decoders.runner_up: rank must be an integer >= 1"):
        spec_of("{runner_up: [0]}")


def test_a_toy_decoder_is_a_choice_of_the_explorer(toy, tmp_path):
    from entropylab.explorer import Explorer, ExplorerWidget

    widget = ExplorerWidget(Explorer(tmp_path))
    assert {"runner_up", "top_a"} <= set(widget.decoder.options)
    widget.decoder.value = "runner_up"
    slider = widget.decoder_value
    assert (slider.description, slider.min, slider.max, slider.step, slider.value) == ("rank", 1, 5, 1, 2)
    assert widget.sampling_seed.layout.display == "none"  # deterministic: no sampling seed
    widget.decoder.value = "top_a"
    assert widget.decoder_value.description == "top_a" and widget.sampling_seed.layout.display is None


def test_a_toy_decoder_is_a_choice_of_the_command_line(toy):
    from entropylab.cli import build_parser, check_decoder_value

    args = build_parser().parse_args(["decode", "some/run", "--decoder", "runner_up", "--value", "3"])
    assert (args.decoder, args.value) == ("runner_up", 3.0)
    check_decoder_value("runner_up", 3.0)
    with pytest.raises(ValueError, match="rank must be an integer >= 1"):
        check_decoder_value("runner_up", 0.0)


def test_unregister_removes_a_decoder_and_its_strategy():
    with restoring():
        registry.register_strategy("always_one")(lambda params, rows: lambda s: (np.ones(len(s.p), int), None))
        assert "always_one" in DECODERS and get_decoder("always_one").deterministic is False
        words = continue_prefixes(rows_model(np.eye(3)), np.array([[0, 2]]), 2, head="softmax", strategy="always_one")
        assert words.words.tolist() == [[1, 1]]
        unregister("always_one")
        assert "always_one" not in DECODERS and "always_one" not in decoding.strategy_names()
        with pytest.raises(ValueError, match="unknown strategy 'always_one'"):
            check_decoder("always_one")
        with pytest.raises(ValueError, match="nothing is registered"):
            unregister("always_one")


def test_the_registered_decoders_sample_what_the_references_keep():
    """Through the registry (each decoder's own parameter) and the one generate path: Top-H on p = (0.9, 0.06,
    0.04) at 0.6 keeps one word (the published running-sum rule), top_p 0.5 on four tied words keeps two and
    Mirostat at tau = 0.5 (mu_0 = 1 bit) keeps one of four tied words of 2 bits, observing 0 bits."""
    table = np.array([[0.0, 0.9, 0.06, 0.04, 0.0], [0.0, 0.25, 0.25, 0.25, 0.25]])
    model = rows_model(np.log(np.maximum(table, 1e-300)))
    words = {}
    for name, value, row in (("top_h", 0.6, 0), ("top_p", 0.5, 1), ("mirostat", 0.5, 1)):
        strategy, params = get_decoder(name).arguments(value)
        result = continue_prefixes(model, np.full((300, 2), row, dtype=np.int32), 1, head="softmax",
                                   strategy=strategy, seed=0, **params)
        words[name] = set(result.words[:, 0].tolist())
        if name == "mirostat":
            assert np.all(result.observed_surprise == 0)
    assert words == {"top_h": {1}, "top_p": {1, 2}, "mirostat": {1}}
    assert [name for name in decoding.TRANSFORMS if "top_h" in name] == ["top_h"]  # one Top-H, the published one
