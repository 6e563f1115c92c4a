"""Loading a corpus by name: the NYT headlines when found, else the synthetic source."""

from __future__ import annotations

import os

from .corpus import Corpus
from .nyt import find_nyt_dir, load_nyt, missing_data_message
from .synthetic import make_synthetic_corpus


def resolve_dataset(name: str = "auto", data_dir: str | os.PathLike | None = None) -> str:
    """``"auto"`` becomes ``"nyt"`` when the NYT files are found, else ``"synthetic"`` (said in one line)."""
    if name != "auto":
        if name not in ("nyt", "synthetic"):
            raise ValueError(f"unknown corpus {name!r}; use 'nyt', 'synthetic' or 'auto'")
        return name
    if data_dir is not None or find_nyt_dir(None) is not None:
        return "nyt"
    notice = missing_data_message() + " Using the project's SYNTHETIC corpus instead."
    print(notice)
    return "synthetic"


def load_corpus(name: str = "nyt", data_dir: str | os.PathLike | None = None, *, fallback: bool = False,
                **options) -> Corpus:
    """Load a corpus by name: ``"nyt"`` (the paper's) or ``"synthetic"`` (seeded, exactly known).

    With ``fallback=True`` a missing NYT folder (none given, none found) gives the synthetic corpus and says
    so in one warning line; a folder that was given but is wrong is always an error.
    ``options`` go to :func:`entropylab.data.synthetic.make_synthetic_corpus` for the synthetic corpus.
    """
    if name == "nyt":
        if options:
            raise TypeError(f"the nyt corpus takes no options, got {sorted(options)}")
        if fallback and resolve_dataset("auto", data_dir) == "synthetic":
            return make_synthetic_corpus()
        return load_nyt(data_dir)
    if name == "synthetic":
        return make_synthetic_corpus(**options)
    raise ValueError(f"unknown corpus {name!r}; use 'nyt' or 'synthetic'")
