"""Loading a corpus by name: the NYT headlines when found, else the synthetic source (the bigram world); or the
hidden-state (topic) source by its name."""

from __future__ import annotations

import os

from .corpus import Corpus
from .hidden_state import make_hidden_state_corpus
from .nyt import find_nyt_dir, load_nyt, missing_data_message
from .synthetic import make_synthetic_corpus

#: The corpora by name: the NYT headlines, the bigram world (a first-order Markov source, ``synthetic``) and the
#: hidden-state (topic) source (``hidden_state``); both synthetic sources know their next-word law exactly.
CORPORA = ("nyt", "synthetic", "hidden_state")
#: The corpora that take options (``RunConfig.synthetic``), with the function that makes each.
SYNTHETIC_CORPORA = {"synthetic": make_synthetic_corpus, "hidden_state": make_hidden_state_corpus}


def resolve_dataset(name: str = "auto", data_dir: str | os.PathLike | None = None) -> str:
    """``"auto"`` becomes ``"nyt"`` when the NYT files are found, else ``"synthetic"`` (said in one line)."""
    if name != "auto":
        if name not in CORPORA:
            raise ValueError(f"unknown corpus {name!r}; use 'nyt', 'synthetic', 'hidden_state' or 'auto'")
        return name
    if data_dir is not None or find_nyt_dir(None) is not None:
        return "nyt"
    notice = missing_data_message() + " Using the project's SYNTHETIC corpus instead."
    print(notice)
    return "synthetic"


def load_corpus(name: str = "nyt", data_dir: str | os.PathLike | None = None, *, fallback: bool = False,
                **options) -> Corpus:
    """Load a corpus by name: ``"nyt"`` (the paper's), ``"synthetic"`` (the bigram world: a seeded first-order
    Markov source) or ``"hidden_state"`` (a seeded topic source where the whole prefix matters); both synthetic
    corpora know their next-word law exactly.

    With ``fallback=True`` a missing NYT folder (none given, none found) gives the synthetic corpus and says
    so in one warning line; a folder that was given but is wrong is always an error.
    ``options`` go to :func:`entropylab.data.synthetic.make_synthetic_corpus` for the synthetic corpus and to
    :func:`entropylab.data.hidden_state.make_hidden_state_corpus` for the hidden-state one.
    """
    if name == "nyt":
        if options:
            raise TypeError(f"the nyt corpus takes no options, got {sorted(options)}")
        if fallback and resolve_dataset("auto", data_dir) == "synthetic":
            return make_synthetic_corpus()
        return load_nyt(data_dir)
    if name in SYNTHETIC_CORPORA:
        return SYNTHETIC_CORPORA[name](**options)
    raise ValueError(f"unknown corpus {name!r}; use 'nyt', 'synthetic' or 'hidden_state'")
