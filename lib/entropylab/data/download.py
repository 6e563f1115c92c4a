"""Download the NYT ``Articles*.csv`` files (Kaggle ``aashita/nyt-comments``) for a user with internet."""

from __future__ import annotations

import shutil
from pathlib import Path

from .nyt import KAGGLE_DATASET, article_files


def download_nyt(dest: str | Path = "data/nyt-comments") -> Path:
    """Fetch the dataset with ``kagglehub`` (needs a Kaggle account) and copy the nine article files to ``dest``."""
    dest = Path(dest)
    if article_files(dest):
        return dest
    try:
        import kagglehub
    except ImportError as exc:
        raise RuntimeError("downloading needs kagglehub: pip install 'entropylab[download]'") from exc
    try:
        folder = Path(kagglehub.dataset_download(KAGGLE_DATASET))
    except Exception as exc:
        raise RuntimeError(
            f"could not download {KAGGLE_DATASET} ({exc}). It needs internet and Kaggle credentials "
            f"(~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY). Or copy the nine Articles*.csv "
            f"files into {dest} by hand.") from exc
    dest.mkdir(parents=True, exist_ok=True)
    for path in article_files(folder):
        shutil.copy2(path, dest / path.name)
    if not article_files(dest):
        raise RuntimeError(f"the download of {KAGGLE_DATASET} held no Articles*.csv file")
    return dest
