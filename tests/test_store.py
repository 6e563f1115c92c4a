"""Damaged files are never read silently: a run folder's ``history.csv``, ``metrics.json`` and ``config.json``, and the
results tables, cut (a full disk, a crash of the machine, a bad copy), emptied or changed, are one line naming the file
and the fix (:class:`entropylab.training.store.DamagedFileError`), checked against the SHA-256 and row count stored
beside a CSV when it was written; files written before those checksums still load."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from entropylab.paths import project_root
from entropylab.training import store

ROOT = project_root(Path(__file__).parent)
HISTORY = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "loss": [0.9, 0.7, 0.6, 0.55, 0.5],
                        "val_loss": [1.0, 0.8, 0.7, 0.72, 0.75], "note": ["a,b", "c", "d", "e", "f"]})
RUN_FIX = "run the sweep again, which trains a damaged run again, or delete the run folder"


def cut(path: Path, how: str) -> None:
    """Damage ``path`` as a full disk or a crash would: ``one line`` (the header only), ``mid-row`` (three whole rows
    and part of the fourth), ``0 bytes``, ``80 %`` (its first 80 % of bytes, ending inside a line), ``half``."""
    data = path.read_bytes()
    ends = [i for i, byte in enumerate(data) if byte == ord("\n")]
    if how == "one line":
        data = data[: ends[0] + 1]
    elif how == "mid-row":
        data = data[: ends[3] + 4]
    elif how == "0 bytes":
        data = b""
    elif how == "80 %":
        size = len(data) * 8 // 10
        data = data[: size if data[size - 1] != ord("\n") else size - 1]
    elif how == "half":
        data = data[: len(data) // 2]
    path.write_bytes(data)


def one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


def finished_run(run_dir: Path, history: pd.DataFrame = HISTORY, checked: bool = True) -> Path:
    """A finished run folder as the training leaves it (a config, a checked history, metrics, ``COMPLETE``)."""
    store.write_json(run_dir / store.CONFIG, {"loss": "mse", "seed": 0})
    store.write_csv(run_dir / store.HISTORY, history, checked=checked)
    store.write_json(run_dir / store.METRICS, {"epochs_run": len(history), "best_epoch": len(history)})
    store.mark_complete(run_dir)
    return run_dir


def test_a_checked_csv_reads_back_and_its_sidecar_is_sha256sum_format(tmp_path):
    path = tmp_path / "history.csv"
    store.write_csv(path, HISTORY, checked=True)
    sidecar = tmp_path / "history.csv.sha256"
    assert sidecar.is_file() and "# rows=5 " in sidecar.read_text()
    pd.testing.assert_frame_equal(store.read_csv(path), HISTORY)
    if shutil.which("sha256sum"):  # the sidecar is what `sha256sum -c` checks
        check = subprocess.run(["sha256sum", "-c", sidecar.name], cwd=tmp_path, capture_output=True, text=True)
        assert check.returncode == 0 and "history.csv: OK" in check.stdout, check.stdout + check.stderr
    store.write_csv(path, pd.DataFrame(), checked=True)  # what a run with no epoch writes
    assert store.read_csv(path).empty
    store.write_csv(path, HISTORY)  # an unchecked write removes the sidecar, which would vouch for other bytes
    assert not sidecar.exists() and store.read_csv(path).equals(HISTORY)


@pytest.mark.parametrize("how, what", [("one line", "0 of 5 rows"), ("mid-row", "3 of 5 rows, cut mid-row"),
                                       ("0 bytes", "0 bytes; it had 5 rows")])
def test_a_cut_checked_csv_is_one_line_naming_it_and_the_fix(tmp_path, how, what):
    path = finished_run(tmp_path / "run") / store.HISTORY
    cut(path, how)
    with pytest.raises(store.DamagedFileError) as excinfo:
        store.read_csv(path)
    assert one_line_error(excinfo) == f"{path} is damaged ({what}); {RUN_FIX} {path.parent}"


def test_a_changed_checked_csv_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    store.write_csv(path, HISTORY, checked=True)
    path.write_bytes(path.read_bytes().replace(b"0.55", b"0.56"))  # same size, other numbers
    with pytest.raises(store.DamagedFileError, match=r"t.csv is damaged \(changed since it was written: 5 rows"):
        store.read_csv(path, fix="write it again")


def test_files_without_a_sidecar_still_load_and_cut_ones_are_refused(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text(HISTORY.to_csv(index=False))  # as written before the checksums
    pd.testing.assert_frame_equal(store.read_csv(path), HISTORY)
    for committed in sorted((ROOT / "outputs" / "results").glob("*.csv")):  # the committed tables have no sidecar
        assert len(store.read_csv(committed)), committed
    for how, what in (("mid-row", "3 whole rows, cut mid-row"), ("0 bytes", "0 bytes")):
        path.write_text(HISTORY.to_csv(index=False))
        cut(path, how)
        with pytest.raises(store.DamagedFileError) as excinfo:
            store.read_csv(path, fix="write it again")
        assert one_line_error(excinfo) == f"{path} is damaged ({what}); write it again"
    path.write_text('a,b\n1,"2\n')  # an open quote: not a table
    with pytest.raises(store.DamagedFileError, match=r"old.csv is damaged \(not a CSV table"):
        store.read_csv(path)


def test_a_cut_json_is_one_line_naming_it(tmp_path):
    path = finished_run(tmp_path / "run") / store.METRICS
    cut(path, "half")
    with pytest.raises(store.DamagedFileError) as excinfo:
        store.read_json(path)
    message = one_line_error(excinfo)
    assert message.startswith(f"{path} is damaged (not valid JSON: Expecting")
    assert message.endswith(f"; {RUN_FIX} {path.parent}")
    path.write_bytes(b"")
    with pytest.raises(store.DamagedFileError, match=r"metrics.json is damaged \(0 bytes\)"):
        store.read_json(path)


@pytest.mark.parametrize("name, how, what", [
    (store.HISTORY, "one line", "0 of 5 rows"),
    (store.HISTORY, "mid-row", "3 of 5 rows, cut mid-row"),
    (store.HISTORY, "0 bytes", "0 bytes; it had 5 rows"),
    (store.METRICS, "half", "not valid JSON"),
    (store.CONFIG, "half", "not valid JSON"),
])
def test_a_finished_run_with_a_damaged_file_is_not_read(tmp_path, name, how, what):
    intact, damaged = finished_run(tmp_path / "runs" / "a"), finished_run(tmp_path / "runs" / "b")
    cut(damaged / name, how)
    assert store.run_damage(intact) is None
    damage = store.run_damage(damaged)
    assert damage is not None and damage.path == damaged / name and what in damage.what
    with pytest.raises(store.DamagedFileError) as excinfo:
        store.load_run(damaged)
    assert one_line_error(excinfo).startswith(f"{damaged / name} is damaged ({what}")
    with pytest.raises(store.DamagedFileError):
        store.completed_runs(tmp_path / "runs")
    left_out: list[store.DamagedFileError] = []
    assert [r.run_dir for r in store.completed_runs(tmp_path / "runs", left_out.append)] == [intact]
    assert [d.path for d in left_out] == [damaged / name]


def test_an_old_finished_run_whose_history_lost_rows_is_damaged(tmp_path):
    """Without a sidecar, a history cut at a line end is found by its row count against ``metrics.json``."""
    run_dir = finished_run(tmp_path / "run", checked=False)
    assert store.run_damage(run_dir) is None
    path = run_dir / store.HISTORY
    path.write_text(HISTORY.head(3).to_csv(index=False))
    assert store.run_damage(run_dir).what == f"3 of 5 rows ({store.METRICS} says 5 epochs ran)"
    cut(path, "one line")
    assert store.run_damage(run_dir).what == "no rows; a finished run has at least one epoch"


def test_a_writer_overtaken_between_its_two_files_leaves_the_sidecar_of_what_is_there(tmp_path, monkeypatch):
    """Two sweeps collecting one experiment at once: A renames its table into place, B writes its table and sidecar,
    then A writes its sidecar. A sees that the table is no longer its own and writes the sidecar of B's table."""
    path = tmp_path / "t.csv"
    write = store.atomic_write_text
    overtaken: list[bool] = []

    def overtaking(target: Path, text: str) -> None:
        if Path(target).name == "t.csv.sha256" and not overtaken:
            overtaken.append(True)
            store.write_csv(path, HISTORY.head(2), checked=True)  # B, whole, between A's two writes
        write(target, text)

    monkeypatch.setattr(store, "atomic_write_text", overtaking)
    store.write_csv(path, HISTORY, checked=True)  # A
    assert overtaken and "# rows=2 " in (tmp_path / "t.csv.sha256").read_text()
    assert len(store.read_csv(path)) == 2


def test_a_reader_waits_for_a_writer_between_its_file_and_its_sidecar(tmp_path, monkeypatch):
    path, sidecar = tmp_path / "t.csv", tmp_path / "t.csv.sha256"
    store.write_csv(path, HISTORY.head(2), checked=True)
    old = sidecar.read_text()
    store.write_csv(path, HISTORY, checked=True)
    new = sidecar.read_text()
    sidecar.write_text(old)  # the writer has renamed the new table into place, not yet its sidecar
    pauses: list[float] = []

    def sleep(seconds: float) -> None:  # the writer renames the sidecar while the reader waits
        pauses.append(seconds)
        if seconds:
            sidecar.write_text(new)

    monkeypatch.setattr(store, "time", SimpleNamespace(sleep=sleep))
    assert len(store.read_csv(path)) == 5 and pauses == [0.0, 0.05]
