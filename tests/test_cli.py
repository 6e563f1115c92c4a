import subprocess
import sys

import pytest

from entropylab.cli import main


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "entropylab", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("train", "sweep", "bench", "data", "info", "reproduce"):
        assert command in out.stdout


def test_train_help():
    out = subprocess.run([sys.executable, "-m", "entropylab", "train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--weight" in out.stdout and "kl_regularized" in out.stdout


def test_train_writes_a_run_folder(tmp_path, capsys):
    code = main(["train", "--dataset", "synthetic", "--loss", "kl_regularized", "--weight", "10", "--epochs", "1",
                 "--max-sequences", "300", "--output", str(tmp_path)])
    assert code == 0
    (folder,) = tmp_path.glob("kl_regularized_w10_seed0-*")
    assert (folder / "COMPLETE").is_file()
    assert "complete" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "--dataset", "synthetic", "--loss", "kl_regularized", "--weight", "-1"], ">= 0"),
    (["train", "--dataset", "nyt", "--data-dir", "/nonexistent/folder"], "make data"),
])
def test_bad_input_is_a_clear_error(argv, message, capsys, tmp_path):
    assert main([*argv, "--output", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_unknown_loss_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--loss", "hinge"])
    assert "kl_regularized" in capsys.readouterr().err


def test_help_answers_without_loading_tensorflow():
    code = "import sys; from entropylab.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n" \
           "print('tensorflow' in sys.modules, 'keras' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "False False False"


def test_default_outputs_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ENTROPYLAB_OUTPUTS", str(tmp_path / "elsewhere"))
    assert main(["train", "--dataset", "synthetic", "--epochs", "1", "--max-sequences", "200", "--no-jit"]) == 0
    assert len(list((tmp_path / "elsewhere" / "runs" / "cli").glob("mse_seed0-*/COMPLETE"))) == 1
