"""A study's steps (:mod:`entropylab.experiments.steps`): a killed step fails alone, no step outlives its study,
two studies never run one step at once. The steps here are shell commands (``subprocess:check_call``), so these
tests need no model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil

from entropylab.experiments.steps import Step, exclusive_lock, is_locked, run_steps


def shell(name: str, script: str, lock: Path) -> Step:
    return Step(name, str(lock), "subprocess:check_call", ["sh", "-c", script])


def _step_processes(parent: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(parent).children(recursive=True)
            if "entropylab.experiments.steps" in " ".join(p.cmdline())]


def test_a_killed_step_fails_alone_and_the_others_finish(tmp_path):
    steps = [shell(f"step {i}", f"sleep 4; echo done > {tmp_path}/{i}.out", tmp_path / f".{i}.lock")
             for i in range(3)]
    def killer() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = _step_processes(os.getpid())
            if len(running) >= 2:
                os.kill(running[0].pid, signal.SIGKILL)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=killer)
    thread.start()
    outcomes = run_steps(steps, workers=2)
    thread.join()
    failed = [o for o in outcomes if o.status == "failed"]
    assert len(failed) == 1 and "killed by SIGKILL" in failed[0].error and ".lock.log" in failed[0].error
    done = [o for o in outcomes if o.status == "done"]
    assert len(done) == 2 and all((tmp_path / f"{o.name[-1]}.out").is_file() for o in done)


def test_a_failing_step_is_one_line_and_the_others_go_on(tmp_path):
    outcomes = run_steps([shell("bad", "exit 3", tmp_path / ".bad.lock"),
                          shell("good", f"touch {tmp_path}/good", tmp_path / ".good.lock")], workers=1)
    assert [o.status for o in outcomes] == ["failed", "done"]
    assert "CalledProcessError" in outcomes[0].error and "exit status 3" in outcomes[0].error
    assert (tmp_path / "good").is_file()


def test_steps_die_with_the_study_that_runs_them(tmp_path):
    script = textwrap.dedent(f"""
        from entropylab.experiments.steps import Step, run_steps
        run_steps([Step(f"s{{i}}", "{tmp_path}/.s{{i}}.lock", "time:sleep", 120) for i in range(2)], workers=2)
    """)
    study = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while len(_step_processes(study.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    children = _step_processes(study.pid)
    assert len(children) == 2
    study.send_signal(signal.SIGKILL)
    study.wait()
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, "a step outlived the study that started it"
    assert not any(is_locked(tmp_path / f".s{i}.lock") for i in range(2))  # their locks died with them


def test_two_studies_run_one_step_one_after_the_other(tmp_path):
    log = tmp_path / "log"
    step = shell("shared", f"echo start >> {log}; sleep 1.5; echo end >> {log}", tmp_path / ".shared.lock")
    results = []
    threads = [threading.Thread(target=lambda: results.append(run_steps([step], workers=1))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [o[0].status for o in results] == ["done", "done"]
    assert log.read_text().split() == ["start", "end", "start", "end"]  # never interleaved


def test_the_lock_waits_for_its_holder_and_names_it(tmp_path):
    lock = tmp_path / ".held.lock"
    with exclusive_lock(lock):
        assert is_locked(lock)
        holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                                   "from entropylab.experiments.steps import exclusive_lock\n"
                                   f"with exclusive_lock({str(lock)!r}, lambda pid: print(pid, flush=True)):\n"
                                   "    print('got it', flush=True)\n"], stdout=subprocess.PIPE, text=True)
        first = holder.stdout.readline().strip()
        assert first == str(os.getpid())  # the waiting process was told who holds the lock
    assert holder.stdout.readline().strip() == "got it"
    assert holder.wait(timeout=30) == 0


def test_a_second_study_waiting_for_a_step_keeps_the_first_one_s_log(tmp_path):
    """Before, the second study opened the step's log with "wb" before its process waited for the lock, emptying
    the log of the process that held it: the first study's failure pointed to a log without its error."""
    from entropylab.experiments.steps import _Running, log_path

    lock = tmp_path / ".shared.lock"
    step = shell("shared", "echo first-stderr >&2; sleep 3; exit 3", lock)
    first = _Running(step)
    deadline = time.monotonic() + 60
    while "first-stderr" not in log_path(step).read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    second = _Running(step)  # waits for the lock that the first holds
    outcome = None
    while outcome is None and time.monotonic() < deadline:
        outcome = first.poll()
        time.sleep(0.1)
    assert outcome is not None and outcome.status == "failed" and "exit status 3" in outcome.error
    assert "first-stderr" in log_path(step).read_text()
    second.kill()
