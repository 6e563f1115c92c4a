"""A Jupyter kernel kept warm across the notebooks that one worker process executes.

A fresh kernel per run costs its start, the imports of TensorFlow, Keras and the notebook's modules, and its
shutdown: about 8 s of a 35 s run of the objectives study on a 2-core machine (``entropylab bench overhead``,
``docs/performance.md``). A :class:`WarmKernel` starts one kernel and lets papermill execute notebook after
notebook in it, each still written to its own run folder as one executed notebook.

Between two notebooks the kernel is reset (:data:`RESET_CODE`): its namespace is emptied (``%reset -f``), its
environment variables, working folder and ``sys.path`` are put back as they were when it started, every open figure
is closed, Keras' global state is cleared (``keras.backend.clear_session``: layer names, the global seed generator,
as a fresh process has them) and the garbage is collected, so an old run's model never lingers. Imported modules
stay imported; that is the point. A run
seeds everything itself before it builds its model (``entropylab.training.train.seed_everything``), so the same
config gives the same numbers in a warm kernel as in a fresh one (``tests/test_kernels.py`` checks it).

A kernel is replaced by a fresh one

* after a notebook fails, or finishes without its run being complete (whatever state it left is never reused),
* when the next notebook needs another environment or working folder (the threads are read at the kernel's start),
* after :func:`runs_per_kernel` notebooks (``$ENTROPYLAB_KERNEL_RUNS``, default :data:`DEFAULT_RUNS`; ``1`` is a
  fresh kernel for every run, as before), which bounds what a long sweep could accumulate in one process.

The kernel's own output (TensorFlow's start-up lines) goes to a log file of the worker (without a name, so a killed
worker leaves none behind); after each notebook the part written during it is copied to the run's
``<stem>.kernel.log``, so every run folder keeps its kernel's lines.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

#: How many notebooks one kernel executes before it is replaced, unless ``$ENTROPYLAB_KERNEL_RUNS`` says otherwise.
DEFAULT_RUNS = 25
RUNS_VARIABLE = "ENTROPYLAB_KERNEL_RUNS"
#: Run in a kernel once it has started: what the resets restore (its environment, working folder and import path).
START_CODE = """\
import os as _os, sys as _sys, types as _types
_start = _types.ModuleType("_entropylab_kernel_start")
_start.environ, _start.cwd, _start.path = dict(_os.environ), _os.getcwd(), list(_sys.path)
_sys.modules[_start.__name__] = _start
del _os, _sys, _types, _start
"""
#: Run in the kernel after each notebook that succeeded: an empty namespace, the start's environment, folder and
#: import path, no figures, Keras' global state cleared and the garbage collected.
RESET_CODE = """\
get_ipython().run_line_magic("reset", "-f")
import os as _os, sys as _sys
_start = _sys.modules["_entropylab_kernel_start"]
_os.environ.clear()
_os.environ.update(_start.environ)
_os.chdir(_start.cwd)
_sys.path[:] = _start.path
if "matplotlib.pyplot" in _sys.modules:
    _sys.modules["matplotlib.pyplot"].close("all")
if "keras" in _sys.modules:
    _sys.modules["keras"].backend.clear_session()  # and a garbage collection: an old run's model goes now
else:
    __import__("gc").collect()
del _os, _sys, _start
"""
#: Every warm kernel's own arguments: its input history kept in memory, not in ``~/.ipython`` (which every worker's
#: kernel would write at once), as nbclient does for the kernels it starts.
HISTORY_ARGUMENTS = ["--HistoryManager.hist_file=:memory:"]
RESET_TIMEOUT_SECONDS = 120
#: Tries to start a kernel: two workers starting kernels at once can pick the same free port (jupyter_client chooses
#: ports by binding and releasing them), and the kernel that loses exits; a second try picks other ports.
START_ATTEMPTS = 3


def runs_per_kernel() -> int:
    """``$ENTROPYLAB_KERNEL_RUNS`` (an integer >= 1), else :data:`DEFAULT_RUNS`; a ``ValueError`` naming the fix."""
    text = os.environ.get(RUNS_VARIABLE, "").strip()
    if not text:
        return DEFAULT_RUNS
    try:
        runs = int(text)
    except ValueError:
        runs = 0
    if runs < 1:
        raise ValueError(f"${RUNS_VARIABLE} must be an integer >= 1 (1: a fresh kernel for every run), got {text!r}")
    return runs


def kernel_manager_class(log: Path | BinaryIO, preexec: Any) -> type:
    """A jupyter_client kernel manager whose kernel writes its stdout and stderr to ``log`` (a path, appended to, or
    an open binary file) and runs ``preexec`` before it starts (the sweep passes one that makes it die with the
    process that started it)."""
    from jupyter_client.manager import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.clients: list[Any] = []

        async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
            command, kw = await super()._async_pre_start_kernel(**kw)
            if isinstance(log, Path):
                log.parent.mkdir(parents=True, exist_ok=True)
                handle = open(log, "ab")  # noqa: SIM115 - the kernel process owns it; closed when it exits
            else:
                handle = log
            kw["stdout"] = kw["stderr"] = handle
            kw["preexec_fn"] = preexec
            return command, kw

        def client(self, **kwargs: Any) -> Any:
            """A client of the kernel, remembered so that :meth:`close_clients` can stop its channels (papermill
            leaves a client of a kernel it did not start open)."""
            made = super().client(**kwargs)
            self.clients.append(made)
            return made

        def close_clients(self) -> None:
            while self.clients:
                with contextlib.suppress(Exception):
                    self.clients.pop().stop_channels()

    return LoggedKernelManager


class WarmKernel:
    """One kernel that executes notebooks one after the other (see the module docstring).

    ``manager(cwd, env)`` gives a started kernel manager for the next notebook (papermill's ``km``) and
    ``finished(ok, log)`` ends that notebook: the kernel is reset or replaced and the notebook's part of the kernel's
    log is copied to ``log``. ``close()`` shuts the kernel down.
    """

    def __init__(self, arguments: list[str], preexec: Any, max_runs: int | None = None) -> None:
        self.arguments = arguments
        self.preexec = preexec
        self.max_runs = max_runs or runs_per_kernel()
        # the kernels' log: a file without a name (removed at once, so that a killed worker leaves nothing behind),
        # written by the kernels through one handle and read back through another
        handle, name = tempfile.mkstemp(prefix="entropylab-kernel-", suffix=".log")
        os.close(handle)
        self._writer = open(name, "ab")  # noqa: SIM115 - O_APPEND: after a truncation the kernels write at the start
        self._reader = open(name, "rb")  # noqa: SIM115 - open for the worker's life, closed by close()
        os.unlink(name)
        self._manager: Any = None
        self._client: Any = None  # this worker's own client of the kernel, for the resets
        self._key: tuple[str, tuple[tuple[str, str], ...]] | None = None
        self._runs = 0
        self._log_start = 0

    @property
    def runs(self) -> int:
        """Notebooks executed by the current kernel."""
        return self._runs

    def manager(self, cwd: str | os.PathLike, env: dict[str, str]) -> Any:
        """A live kernel manager started in ``cwd`` with the process environment plus ``env``, reused when the last
        notebook ran in the same folder and environment and succeeded."""
        key = (str(Path(cwd).resolve()), tuple(sorted(env.items())))
        self._log_start = os.fstat(self._reader.fileno()).st_size
        if self._manager is not None and (key != self._key or self._runs >= self.max_runs or not self._alive()):
            self._shutdown()
        if self._manager is None:
            for attempt in range(1, START_ATTEMPTS + 1):
                try:
                    self._start(key, env)
                    break
                except Exception:  # e.g. a port taken between choosing it and binding it (another worker's kernel)
                    self._shutdown()
                    if attempt == START_ATTEMPTS:
                        raise
        return self._manager

    def _start(self, key: tuple[str, tuple[tuple[str, str], ...]], env: dict[str, str]) -> None:
        """Start a kernel in ``key``'s folder with ``env``, connect this worker's client, record its start state."""
        from jupyter_core.utils import run_sync

        manager = kernel_manager_class(self._writer, self.preexec)(kernel_name="python3")
        self._manager, self._key, self._runs = manager, key, 0
        run_sync(manager.start_kernel)(cwd=key[0], env={**os.environ, **env},
                                       extra_arguments=[*self.arguments, *HISTORY_ARGUMENTS])
        self._client = manager.blocking_client()
        self._client.start_channels()
        self._client.wait_for_ready(timeout=RESET_TIMEOUT_SECONDS)
        # the kernel has read its connection file and clients take the manager's copy: a killed worker leaves
        # no file with the kernel's key behind
        with contextlib.suppress(OSError):
            os.unlink(manager.connection_file)
        reply = self._client.execute_interactive(START_CODE, store_history=False, timeout=RESET_TIMEOUT_SECONDS,
                                                 output_hook=lambda message: None)
        if reply.get("content", {}).get("status") != "ok":
            raise RuntimeError(f"the kernel could not record its start state: {reply.get('content')}")

    def finished(self, ok: bool, log: str | os.PathLike | None = None) -> None:
        """End the current notebook: copy its part of the kernel's log to ``log``, then reset the kernel (``ok``)
        or replace it (a failed notebook, or a reset that fails). Without a kernel (its start failed) only the log
        is copied."""
        if log is not None:
            self._copy_log(Path(log))
        if self._manager is None:
            return
        self._runs += 1
        self._manager.close_clients()
        if not ok or not self._reset():
            self._shutdown()

    def discard(self) -> None:
        """Replace the kernel before the next notebook (the last one left its run unfinished)."""
        self._shutdown()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (the kernel is down, its log gone)."""
        return self._reader.closed

    def close(self) -> None:
        """Shut the kernel down and close the kernels' log."""
        self._shutdown()
        self._writer.close()
        self._reader.close()

    def _alive(self) -> bool:
        from jupyter_core.utils import run_sync

        try:
            return bool(run_sync(self._manager.is_alive)())
        except Exception:  # a manager that cannot say is not reused
            return False

    def _reset(self) -> bool:
        try:
            reply = self._client.execute_interactive(RESET_CODE, store_history=False, timeout=RESET_TIMEOUT_SECONDS,
                                                     output_hook=lambda message: None)
            return reply.get("content", {}).get("status") == "ok"
        except Exception:  # a kernel that cannot be reset is replaced
            return False

    def _copy_log(self, target: Path) -> None:
        with contextlib.suppress(OSError):
            self._reader.seek(self._log_start)
            target.write_bytes(self._reader.read())
            os.ftruncate(self._writer.fileno(), 0)  # the kernel appends, so it goes on at the start: no growth
            self._log_start = 0

    def _shutdown(self) -> None:
        from jupyter_core.utils import run_sync

        if self._manager is None:
            return
        manager, self._manager, self._key, self._runs = self._manager, None, None, 0
        client, self._client = self._client, None
        with contextlib.suppress(Exception):
            client.stop_channels()
        with contextlib.suppress(Exception):
            run_sync(manager.shutdown_kernel)(now=True)
        with contextlib.suppress(Exception):
            run_sync(manager.cleanup_resources)()
