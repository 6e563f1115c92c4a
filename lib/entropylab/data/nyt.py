"""Finding and reading the NYT ``Articles*.csv`` files (Kaggle ``aashita/nyt-comments``) into a corpus."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from .corpus import Corpus, DataError, corpus_from_headlines

HEADLINE_COLUMN = "headline"
UNKNOWN_HEADLINE = "Unknown"
DATA_ENV_VAR = "ENTROPYLAB_DATA"
KAGGLE_DATASET = "aashita/nyt-comments"
EXPECTED_NYT_FILES = 9
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
         "November", "December"], start=1)
}
_MONTH_ALIASES = {"Jan": 1, "Feb": 2, "Sept": 9, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12, "Aug": 8}
_FILE_PATTERN = re.compile(r"^Articles([A-Za-z]+)(\d{4})\.csv$")


def candidate_data_dirs() -> list[Path]:
    """Where the NYT files are looked for when no folder is given, in order."""
    candidates: list[Path] = []
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        candidates.append(Path(env).expanduser())
    project_root = Path(__file__).resolve().parents[3]
    for base in (Path.cwd(), project_root):
        candidates.append(base / "data" / "nyt-comments")
        candidates.append(base.parent / "shared" / "data" / "nyt-comments")
    unique: list[Path] = []
    for c in candidates:
        if c not in unique:
            unique.append(c)
    return unique


def article_files(data_dir: Path) -> list[Path]:
    """The ``Articles*.csv`` files of a folder in chronological order (year, then month)."""
    found = []
    for path in Path(data_dir).glob("Articles*.csv"):
        match = _FILE_PATTERN.match(path.name)
        if not match:
            continue
        month_name, year = match.groups()
        month = _MONTHS.get(month_name) or _MONTH_ALIASES.get(month_name)
        if month is None:
            raise DataError(f"{path}: cannot read the month from the file name; expected e.g. ArticlesJan2017.csv")
        found.append((int(year), month, path))
    return [p for _, _, p in sorted(found)]


def find_nyt_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder holding the NYT files: ``data_dir`` if given, else ``$ENTROPYLAB_DATA`` if set, else the first
    of :func:`candidate_data_dirs` that holds them.

    A folder that is named (by ``data_dir`` or by the environment variable) must exist and hold the files,
    else :class:`DataError`; the search never falls back from a named folder to the default ones.
    Returns ``None`` when no default folder holds any ``Articles*.csv`` file.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataError(
                f"data folder {path} does not exist. Give the folder that holds the nine Articles*.csv files "
                f"of the Kaggle dataset {KAGGLE_DATASET}, or run `make data` to download them.")
        if not article_files(path):
            raise DataError(
                f"data folder {path} holds no Articles*.csv file. Give the folder of the Kaggle dataset "
                f"{KAGGLE_DATASET}, or run `make data` to download them.")
        return path
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            problem = "does not exist"
        elif not article_files(path):
            problem = "holds no Articles*.csv file"
        else:
            return path
        raise DataError(
            f"${DATA_ENV_VAR} names the folder {path}, which {problem}. Set ${DATA_ENV_VAR} to the folder that "
            f"holds the nine Articles*.csv files of the Kaggle dataset {KAGGLE_DATASET} (or run `make data` "
            f"to download them), or unset it to search the default folders.")
    for candidate in candidate_data_dirs():
        if candidate.is_dir() and article_files(candidate):
            return candidate
    return None


def missing_data_message() -> str:
    """One line that says the NYT data is absent and names the fix."""
    looked = ", ".join(str(p) for p in candidate_data_dirs())
    return (f"NYT data not found (looked in {looked}); set ${DATA_ENV_VAR} or pass data_dir, "
            f"or run `make data` to download {KAGGLE_DATASET} with kagglehub.")


def read_headlines(data_dir: str | os.PathLike) -> list[str]:
    """Raw headlines (column ``headline``) of every ``Articles*.csv`` in chronological order (year, month, then
    row order), the ones equal to ``"Unknown"`` dropped."""
    import pandas as pd

    files = article_files(Path(data_dir))
    if not files:
        raise DataError(f"{data_dir} holds no Articles*.csv file")
    if len(files) != EXPECTED_NYT_FILES:
        warnings.warn(f"{data_dir} holds {len(files)} Articles*.csv files, the paper used "
                      f"{EXPECTED_NYT_FILES}; results will differ from the paper's.", stacklevel=2)
    headlines: list[str] = []
    for path in files:
        try:
            frame = pd.read_csv(path)
        except Exception as exc:
            raise DataError(f"{path}: cannot be read as CSV ({exc}); re-download it with `make data`") from exc
        if HEADLINE_COLUMN not in frame.columns:
            raise DataError(
                f"{path}: no column {HEADLINE_COLUMN!r} (columns: {', '.join(map(str, frame.columns))}); "
                f"the loader needs the Articles*.csv files of {KAGGLE_DATASET}, not the Comments*.csv ones.")
        values = frame[HEADLINE_COLUMN].dropna().astype(str).tolist()
        headlines.extend(h for h in values if h != UNKNOWN_HEADLINE)
    return headlines


def load_nyt(data_dir: str | os.PathLike | None = None) -> Corpus:
    """The paper's corpus from the NYT ``Articles*.csv`` files (see :func:`find_nyt_dir`)."""
    folder = find_nyt_dir(data_dir)
    if folder is None:
        raise DataError(missing_data_message())
    return corpus_from_headlines("nyt", read_headlines(folder), source=str(folder))
