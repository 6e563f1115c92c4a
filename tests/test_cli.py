import argparse
import dataclasses
import subprocess
import sys

import pytest

from entropylab import objectives
from entropylab.bench.__main__ import module_main as bench_module_main
from entropylab.cli import build_parser, main, train_config, train_option
from entropylab.data import load_corpus
from entropylab.studies.reproduce import STUDIES
from entropylab.training.config import RunConfig


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "entropylab", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("train", "decode", "sweep", "bench", "data", "info", "reproduce"):
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


# -- train: an option per RunConfig field, the objective's default weight ------------------------------------

def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


def test_every_run_config_field_is_a_train_option():
    actions = {a.dest: a for a in _subparser("train")._actions}
    missing = [f.name for f in dataclasses.fields(RunConfig)
               if f.name not in actions or train_option(f.name) not in actions[f.name].option_strings]
    assert missing == []
    assert {"--patience", "--threads", "--embedding-dim", "--lstm-units", "--dropout", "--generation-prefixes"} <= \
        {flag for action in actions.values() for flag in action.option_strings}


#: A value other than the default for every RunConfig field: (the command line's words, the config's value).
FIELD_VALUES = {
    "dataset": (["synthetic"], "synthetic"), "data_dir": (["/some/folder"], "/some/folder"),
    "loss": (["kl_regularized"], "kl_regularized"), "weight": (["10"], 10.0), "head": (["linear"], "linear"),
    "epochs": (["2"], 2), "batch_size": (["16"], 16), "seed": (["3"], 3), "split": (["headline"], "headline"),
    "val_fraction": (["0.25"], 0.25), "split_seed": (["4"], 4), "embedding_dim": (["12"], 12),
    "lstm_units": (["16"], 16), "dropout": (["0.2"], 0.2), "learning_rate": (["0.01"], 0.01),
    "max_sequences": (["300"], 300), "jit_compile": ([], False), "backend": (["tensorflow"], "tensorflow"),
    "threads": (["1"], 1), "synthetic": (['{"n_headlines": 500}'], {"n_headlines": 500}),
    "patience": (["2"], 2), "tuning": ([], True), "generation_prefixes": (["50"], 50),
    "input_pipeline": (["numpy"], "numpy"), "init_nudge_ulps": (["100"], 100), "test_fraction": (["0.1"], 0.1),
}


def test_every_field_set_on_the_command_line_reaches_the_config():
    assert set(FIELD_VALUES) == {f.name for f in dataclasses.fields(RunConfig)}, "a new field needs a value here"
    flags = {"jit_compile": "--no-jit-compile"}
    argv = ["train"] + [word for name, (words, _) in FIELD_VALUES.items()
                        for word in (flags.get(name, train_option(name)), *words)]
    config = train_config(build_parser().parse_args(argv))
    assert {name: getattr(config, name) for name in FIELD_VALUES} == {n: v for n, (_, v) in FIELD_VALUES.items()}
    default = train_config(build_parser().parse_args(["train"]))
    assert default == RunConfig() and default.run_name == RunConfig().run_name  # nothing given: RunConfig's run
    assert train_config(build_parser().parse_args(["train", "--no-jit", "--patience", "none"])).jit_compile is False


@pytest.mark.parametrize("loss", objectives.names())
def test_weight_defaults_to_the_objectives_own(loss):
    config = train_config(build_parser().parse_args(["train", "--loss", loss]))
    assert config.weight == objectives.get(loss).default
    if objectives.get(loss).takes_parameter:
        assert train_config(build_parser().parse_args(["train", "--loss", loss, "--weight", "0.5"])).weight == 0.5


def test_train_option_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--patience", "soon"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and "--patience" in err


# -- decode ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny finished run trained through the command line: alpha_divergence without --weight (which used to
    fail with "exponent must be in (0, inf), got 0")."""
    output = tmp_path_factory.mktemp("outputs")
    code = main(["train", "--dataset", "synthetic", "--loss", "alpha_divergence", "--epochs", "1", "--max-sequences",
                 "300", "--no-jit", "--threads", "1", "--output", str(output)])
    assert code == 0
    weight = objectives.get("alpha_divergence").default
    (run_dir,) = output.glob(f"alpha_divergence_w{weight:g}_seed0-*")
    return run_dir


def _decode_lines(argv, capsys):
    assert main(["decode", *argv]) == 0
    return capsys.readouterr().out.strip().splitlines()


def _continuation(line):
    """``(prefix words, continuation words)`` of a printed line ``N. prefix words [Next Words]``."""
    _, _, tail = line.partition(". ")
    prefix, _, rest = tail.partition(" [")
    return prefix.split(), rest.rstrip("]").split()


def test_decode_prints_validation_prefixes_and_their_continuations(finished_run, capsys):
    argv = [str(finished_run), "--decoder", "top_p", "--value", "0.9", "--prefixes", "3", "--seed", "1",
            "--words", "4"]
    lines = _decode_lines(argv, capsys)
    assert "top_p=0.9" in lines[0] and len(lines) == 4
    vocabulary = load_corpus("synthetic").word_index
    for number, line in enumerate(lines[1:], 1):
        assert line.startswith(f"{number}. ")
        prefix, words = _continuation(line)
        assert prefix and all(w in vocabulary for w in prefix)
        assert len(words) == 4 and all(w.lower() in vocabulary for w in words)
    assert _decode_lines(argv, capsys) == lines  # a seed gives the same words
    assert _decode_lines([*argv[:-3], "2", "--words", "4"], capsys) != lines  # another seed, other words


def test_decode_continues_a_text_as_the_paper_greedy_does(finished_run, capsys):
    from entropylab.decoding import continue_text
    from entropylab.training import load_trained

    model, corpus, config = load_trained(finished_run)
    text = " ".join(corpus.index_word[i] for i in (1, 2, 3))
    lines = _decode_lines([str(finished_run), "--prefix", text, "--words", "5"], capsys)
    prefix, words = _continuation(lines[1])
    assert "greedy" in lines[0] and len(lines) == 2 and prefix == text.split()
    assert words == continue_text(model, corpus, text, 5, head=config.head).words


@pytest.mark.parametrize("argv, message", [
    (["{missing}"], "no folder"),
    (["{unfinished}"], "no finished run"),
    (["{run}", "--decoder", "nucleus"], "invalid choice: 'nucleus'"),
    (["{run}", "--decoder", "top_p", "--value", "1.5"], "top_p must be in (0, 1] (1 = off), got 1.5"),
    (["{run}", "--decoder", "beam", "--value", "2.5"], "whole number"),
    (["{run}", "--decoder", "greedy", "--value", "0.5"], "takes no --value"),
    (["{run}", "--prefix", "zzzz qqqq"], "'zzzz', 'qqqq' not in the run's synthetic vocabulary"),
    (["{run}", "--prefixes", "0"], "--prefixes must be an integer >= 1"),
])
def test_decode_errors_are_one_line(argv, message, finished_run, tmp_path, capsys):
    (tmp_path / "unfinished").mkdir()
    folders = {"missing": tmp_path / "missing", "unfinished": tmp_path / "unfinished", "run": finished_run}
    try:
        code = main(["decode", *(word.format(**folders) for word in argv)])
    except SystemExit as exit_info:  # argparse's own refusals
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_decode_error_exits_2_without_a_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "entropylab", "decode", str(tmp_path / "missing")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"error: no folder {tmp_path / 'missing'}; give a run folder such as outputs/runs/<experiment>/<run>"]


def test_decode_of_a_run_with_a_cut_config_names_the_file(tmp_path, capsys):
    """Before, a cut config.json was "error: Unterminated string starting at: line 4 column 3 (char 51)": no file."""
    from entropylab.training import store

    run_dir = tmp_path / "run"
    store.write_json(run_dir / store.CONFIG, RunConfig(dataset="synthetic").to_dict())
    store.mark_complete(run_dir)
    config = run_dir / store.CONFIG
    config.write_bytes(config.read_bytes()[:60])
    assert main(["decode", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {config} is damaged (not valid JSON: ") and "Traceback" not in err
    assert err.strip().endswith(f"or delete the run folder {run_dir}") and len(err.strip().splitlines()) == 1


# -- bench generation, --study, --help ----------------------------------------------------------------------------

def test_bench_generation_is_a_mode_of_bench(finished_run, tmp_path, capsys):
    assert build_parser().parse_args(["bench", "--quick"]).mode is None
    for extra, name in (([], "generation_*.csv"), (["--decoders"], "decoders_*.csv")):
        assert main(["bench", "generation", "--run", str(finished_run), "--prefixes", "20", "--words", "2",
                     "--repeats", "1", "--per-sequence-prefixes", "4", "--output-dir", str(tmp_path), *extra]) == 0
        (written,) = tmp_path.glob(name)
        assert len(written.read_text().strip().splitlines()) > 1
    assert bench_module_main(["generation"]) == 2
    assert "entropylab bench generation" in capsys.readouterr().err


def test_study_choices_come_from_the_studies_table():
    (study,) = [a for a in _subparser("reproduce")._actions if a.dest == "study"]
    assert tuple(study.choices) == tuple(STUDIES)
    with pytest.raises(SystemExit):
        main(["reproduce", "--study", "nope"])


@pytest.mark.parametrize("argv", [["train", "--help"], ["decode", "--help"], ["bench", "generation", "--help"]])
def test_command_help_loads_nothing_heavy(argv):
    code = f"import sys; from entropylab.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n" \
           "print('tensorflow' in sys.modules, 'keras' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "False False False"


def test_ctrl_c_stops_reproduce_with_one_line(monkeypatch, capsys):
    """Before, Ctrl-C during ``reproduce`` (its sweep or its decoding steps) ended with a traceback, where
    ``sweep`` says in one line how to go on."""
    import entropylab.studies.reproduce as reproduce

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reproduce, "main", interrupted)
    try:
        code = main(["reproduce", "--study", "decoding"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C went out of reproduce as a traceback")
    assert code == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("reproduce stopped; run the same command again")
