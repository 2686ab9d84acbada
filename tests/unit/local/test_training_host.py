"""A job in the warm training host behaves as ``python <program>`` in its folder and environment would."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftloop.local.training_host import TrainingHost, TrainingHostError


@pytest.fixture(scope="module", params=[True, False], ids=["fork", "new-python"])
def host(request: pytest.FixtureRequest) -> Iterator[TrainingHost]:
    """The warm host, and a new Python per job (off Linux): the same behaviour."""
    warm = TrainingHost(preload=("json",), fork=request.param)
    yield warm
    warm.close()


def run(host: TrainingHost, folder: Path, source: str,
        environment: dict[str, str] | None = None) -> tuple[int, str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.py").write_text(textwrap.dedent(source))
    stdout, stderr = folder / "stdout", folder / "stderr"
    code = host.run("job.py", str(folder), environment or {"PATH": os.environ["PATH"]}, str(stdout), str(stderr))
    return code, stdout.read_text(), stderr.read_text()


def test_a_job_runs_in_its_folder_with_its_environment_arguments_and_streams(host: TrainingHost,
                                                                           tmp_path: Path) -> None:
    code, out, err = run(host, tmp_path, """
        import os, sys
        print(os.getcwd(), sys.argv, os.environ.get("SM_MODEL_DIR"), os.environ.get("HOME"), __name__)
        print("to stderr", file=sys.stderr)
        print(sys.stdin.read() == "")
    """, {"SM_MODEL_DIR": "/opt/ml/model"})
    assert code == 0
    assert out.splitlines() == [f"{tmp_path} ['job.py'] /opt/ml/model None __main__", "True"]
    assert err == "to stderr\n"


def test_a_job_imports_its_own_code_first_and_none_of_the_host(host: TrainingHost, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "driftloop").mkdir(parents=True)
    (bundle / "driftloop" / "__init__.py").write_text("SOURCE = 'the bundle'\n")
    code, out, _ = run(host, tmp_path / "job", """
        import sys
        import driftloop
        print(driftloop.SOURCE)
        print(any(path.endswith("driftloop/local") for path in sys.path))
    """, {"PYTHONPATH": str(bundle)})
    assert code == 0
    assert out.splitlines() == ["the bundle", "False"], "the bundle's driftloop, never the host's folder"


def test_the_host_has_imported_its_preloads_before_the_job_starts(tmp_path: Path) -> None:
    host = TrainingHost(preload=("json",), fork=True)
    try:
        code, out, _ = run(host, tmp_path, "import sys; print('json' in sys.modules)")
        assert code == 0 and out == "True\n"
    finally:
        host.close()


@pytest.mark.parametrize(("source", "expected_code", "expected_error"), [
    ("import sys; sys.exit(3)", 3, ""),
    ("import sys; sys.exit('no purchases in the upload')", 1, "no purchases in the upload\n"),
    ("raise ValueError('bad hyperparameter')", 1, "ValueError: bad hyperparameter\n"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL, ""),
])
def test_a_job_reports_the_exit_status_python_would(host: TrainingHost, tmp_path: Path, source: str,
                                                    expected_code: int, expected_error: str) -> None:
    code, _, err = run(host, tmp_path, source)
    assert code == expected_code
    assert err.endswith(expected_error)


def test_jobs_run_at_the_same_time(host: TrainingHost, tmp_path: Path) -> None:
    """Each job waits for the other's file: run one after the other, the first would time out."""
    waits = """
        import pathlib, time
        pathlib.Path("{mine}").touch()
        deadline = time.monotonic() + 20
        while not pathlib.Path("{other}").exists():
            assert time.monotonic() < deadline, "the other job never started"
            time.sleep(0.01)
    """
    codes: list[int] = []
    first = threading.Thread(target=lambda: codes.append(run(host, tmp_path / "a", waits.format(
        mine=tmp_path / "a.started", other=tmp_path / "b.started"))[0]))
    first.start()
    codes.append(run(host, tmp_path / "b", waits.format(mine=tmp_path / "b.started", other=tmp_path / "a.started"))[0])
    first.join()
    assert codes == [0, 0]


def test_a_host_that_dies_fails_its_running_jobs_and_the_next_job_starts_a_new_one(tmp_path: Path) -> None:
    host = TrainingHost(preload=(), fork=True)
    try:
        code, out, _ = run(host, tmp_path / "first", "import os; print(os.getppid())")
        host_pid = int(out)
        assert code == 0
        with pytest.raises(TrainingHostError, match="exited with status -9 before the job ended"):
            run(host, tmp_path / "killed", f"import os, signal, time; os.kill({host_pid}, signal.SIGKILL); "
                                           "time.sleep(30)")
        code, out, _ = run(host, tmp_path / "after", "import os; print(os.getppid())")
        assert code == 0 and int(out) != host_pid
    finally:
        host.close()


def test_a_closed_host_waits_for_its_running_job(tmp_path: Path) -> None:
    host = TrainingHost(preload=(), fork=True)
    results: list[int] = []
    job = threading.Thread(target=lambda: results.append(run(host, tmp_path, """
        import pathlib, time
        pathlib.Path("started").touch()
        time.sleep(0.5)
        pathlib.Path("finished").touch()
    """)[0]))
    job.start()
    while not (tmp_path / "started").exists():
        assert job.is_alive()
        time.sleep(0.01)
    host.close()
    assert (tmp_path / "finished").exists(), "close returned before the running job ended"
    job.join(timeout=30)
    assert results == [0]


def test_a_module_the_host_cannot_preload_fails_only_the_jobs_that_import_it(tmp_path: Path) -> None:
    host = TrainingHost(preload=("json", "no_such_library"), fork=True)
    try:
        assert run(host, tmp_path / "plain", "import json")[0] == 0
        code, _, err = run(host, tmp_path / "needs", "import no_such_library")
        assert code == 1 and err.endswith("ModuleNotFoundError: No module named 'no_such_library'\n")
    finally:
        host.close()


def test_a_request_larger_than_one_pipe_read_reaches_the_job_whole(host: TrainingHost, tmp_path: Path) -> None:
    large = "x" * 100_000  # the host reads its requests 64 KiB at a time (exec takes up to 128 KiB a variable)
    code, out, _ = run(host, tmp_path, "import os; print(len(os.environ['SM_HPS']))",
                       {"PATH": os.environ["PATH"], "SM_HPS": large})
    assert code == 0 and out == "100000\n"
