"""A warm process for the local trainer's jobs: the container's libraries loaded once, a fork per job.

A local training job used to start a new Python, and spent about half of its 0.6 s importing numpy, SciPy
and pyarrow: the libraries the training image ships. :class:`TrainingHost` starts one process that imports
them, then forks it for each job. The fork runs the job's entry point as ``python <program>`` would: in
the job's folder, with the job's environment (``PYTHONPATH`` ahead of ``sys.path``), ``sys.argv``, its
stdout and stderr in files, and the entry point's exit status, or minus the signal that stopped it. The
job's own code, the bundle's ``driftloop`` modules, is imported afresh by each job: the host imports no
``driftloop`` module, since this file runs by path and imports only the standard library.

Jobs run concurrently, each in its own process. The host ends when the process that started it closes
it or exits. Forking a process that has loaded numpy is safe on Linux; macOS's system libraries (which
numpy's BLAS may use) are not, which is why Python no longer forks there by default: elsewhere than on
Linux, each job starts a new Python, as before.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import IO, Any

PRELOADED = ("numpy", "scipy.sparse", "pyarrow", "pyarrow.compute", "pyarrow.fs", "pyarrow.parquet")
FORK_IS_SAFE = sys.platform.startswith("linux")


class TrainingHostError(RuntimeError):
    """The host process ended before it reported a job's exit status."""


class TrainingHost:
    """Runs programs in forks of one warm Python process, started on the first job.

    Parameters
    ----------
    preload
        Modules the host imports once, before any fork.
    fork
        Fork the host for each job; with ``False``, each job starts a new Python (no host).
    """

    def __init__(self, preload: Sequence[str] = PRELOADED, *, fork: bool = FORK_IS_SAFE) -> None:
        self._preload = tuple(preload)
        self._fork = fork
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._pending: dict[int, tuple[subprocess.Popen[str], Future[int]]] = {}
        self._ids = itertools.count()

    def run(self, program: str, cwd: str, environment: Mapping[str, str], stdout: str, stderr: str) -> int:
        """Run ``program`` as ``python program`` would, stdout and stderr into those files; its exit status."""
        if not self._fork:
            with open(stdout, "wb") as out, open(stderr, "wb") as err:
                return subprocess.run([sys.executable, program], cwd=cwd, env=dict(environment),
                                      stdin=subprocess.DEVNULL, stdout=out, stderr=err, check=False).returncode
        outcome: Future[int] = Future()
        with self._lock:
            process = self._started()
            job_id = next(self._ids)
            self._pending[job_id] = (process, outcome)
            request = {"id": job_id, "program": program, "cwd": cwd, "environment": dict(environment),
                       "stdout": stdout, "stderr": stderr}
            try:
                assert process.stdin is not None
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
            except OSError as error:
                del self._pending[job_id]
                raise TrainingHostError(f"the training host took no job: {error}") from error
        return outcome.result()

    def close(self) -> None:
        """End the host once its running jobs have ended."""
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            assert process.stdin is not None
            process.stdin.close()
            process.wait()

    def _started(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
            self._process = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), *self._preload], env=environment,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            threading.Thread(target=self._read_statuses, args=(self._process,), name="training-host",
                             daemon=True).start()
        return self._process

    def _read_statuses(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            status = json.loads(line)
            with self._lock:
                _, outcome = self._pending.pop(status["id"])
            outcome.set_result(status["returncode"])
        process.wait()
        with self._lock:
            orphans = [job_id for job_id, (owner, _) in self._pending.items() if owner is process]
            outcomes = [self._pending.pop(job_id)[1] for job_id in orphans]
        for outcome in outcomes:
            outcome.set_exception(TrainingHostError(
                f"the training host exited with status {process.returncode} before the job ended"))


def _run_job(request: Mapping[str, Any], base_path: list[str], host_descriptors: Sequence[int]) -> None:
    """In the fork: become ``python <program>`` for the request, and exit with its status."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for descriptor in host_descriptors:
            os.close(descriptor)
        for stream, target, flags in ((0, os.devnull, os.O_RDONLY),
                                      (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                      (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            descriptor = os.open(target, flags, 0o644)
            os.dup2(descriptor, stream)
            os.close(descriptor)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["environment"])
        extra = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
        sys.path[:] = [os.path.dirname(os.path.abspath(request["program"])), *extra, *base_path]
        sys.argv[:] = [request["program"]]
        import runpy

        runpy.run_path(request["program"], run_name="__main__")
        code = 0
    except SystemExit as leaving:
        code = leaving.code if isinstance(leaving.code, int) else (0 if leaving.code is None else 1)
        if not isinstance(leaving.code, int | None):
            print(leaving.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - reported as the interpreter would, then the exit status
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _exit_status(wait_status: int) -> int:
    return -os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else os.WEXITSTATUS(wait_status)


def _serve(requests: int, statuses: IO[str], preload: Sequence[str]) -> None:
    import contextlib
    import importlib

    for module in preload:
        with contextlib.suppress(ImportError):  # a job that needs it fails with its own ImportError
            importlib.import_module(module)
    base_path = [entry for entry in sys.path if entry != os.path.dirname(os.path.abspath(__file__))]
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_write)
    running: dict[int, int] = {}
    received = b""
    open_requests = True
    while open_requests or running:
        ready, _, _ = select.select([requests, wake_read] if open_requests else [wake_read], [], [])
        if wake_read in ready:
            os.read(wake_read, 512)
        if requests in ready:
            chunk = os.read(requests, 1 << 16)
            open_requests = bool(chunk)
            *lines, received = (received + chunk).split(b"\n")
            for line in lines:
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _run_job(request, base_path, (wake_read, wake_write))
                running[pid] = request["id"]
        for pid in list(running):
            finished, wait_status = os.waitpid(pid, os.WNOHANG)
            if finished:
                statuses.write(json.dumps({"id": running.pop(pid), "returncode": _exit_status(wait_status)}) + "\n")
                statuses.flush()


if __name__ == "__main__":
    _serve(sys.stdin.fileno(), sys.stdout, sys.argv[1:])
