"""The sweep runner never deletes outside its folder, keeps no absolute paths, and never races a live trial."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

import lightning_gen.jobs.sweep as sweep_mod
from lightning_gen.jobs.sweep import LocalSweep, SweepError
from tests.test_sweeps import quick_trial_processes, write_sweep


@pytest.fixture
def quick_trials(monkeypatch):
    """Every trial process records a metric instead of training (the runner's bookkeeping is what's tested)."""
    return quick_trial_processes(monkeypatch)


def _interrupted_folder(folder, trial_dir: str) -> None:
    """A sweep folder whose trial 1 was cut off, its results.json naming ``trial_dir`` as older versions did."""
    os.makedirs(os.path.join(folder, "trial-0001"), exist_ok=True)
    (folder / "trial-0001" / "keep.txt").write_text("the original's trial")
    trial = {
        "number": 1,
        "name": "trial-0001",
        "params": {"model.init_args.n_critic": 1},
        "state": "running",
        "metric": None,
        "run_dir": None,
        "reason": None,
        "trial_dir": trial_dir,
    }
    return trial


def test_continuing_a_copied_sweep_folder_leaves_the_original_alone(tmp_path, quick_trials):
    path = write_sweep(tmp_path)
    original, copy = tmp_path / "original", tmp_path / "copy"
    sweep = LocalSweep(path, directory=str(original))
    sweep.trials = [_interrupted_folder(original, str(original / "trial-0001"))]  # absolute, as before
    sweep.save()
    shutil.copytree(original, copy)
    LocalSweep(path, directory=str(copy)).run(1)
    assert (original / "trial-0001" / "keep.txt").read_text() == "the original's trial"
    assert not (copy / "trial-0001" / "keep.txt").exists()  # the copy's own cut-off trial was run again
    trials = json.loads((copy / "results.json").read_text())["trials"]
    assert trials[0]["trial_dir"] == "trial-0001" and trials[0]["state"] == "finished"


def test_a_results_file_never_makes_the_runner_delete_outside_its_folder(tmp_path, quick_trials):
    path = write_sweep(tmp_path)
    folder, victim = tmp_path / "sweep", tmp_path / "victim"
    victim.mkdir()
    (victim / "data.txt").write_text("precious")
    sweep = LocalSweep(path, directory=str(folder))
    sweep.trials = [_interrupted_folder(folder, str(victim))]
    sweep.save()
    LocalSweep(path, directory=str(folder)).run(1)
    assert (victim / "data.txt").read_text() == "precious"
    bad = json.loads((folder / "results.json").read_text())
    bad["trials"][0]["name"] = "../victim"
    (folder / "results.json").write_text(json.dumps(bad))
    with pytest.raises(SweepError, match="trial name"):
        LocalSweep(path, directory=str(folder))
    assert (victim / "data.txt").read_text() == "precious"


@pytest.mark.parametrize("name", ["../../escape", "/tmp/abs", "a/b", "..", ""])
def test_sweep_names_that_leave_runs_sweeps_are_refused(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sweepfile.yaml"
    config = yaml.safe_load(open(write_sweep(tmp_path, "sweepfile")))
    path.write_text(yaml.safe_dump({**config, "name": name}))
    with pytest.raises(SweepError, match="name"):
        LocalSweep(str(path)).run(1)
    assert os.listdir(tmp_path) == ["sweepfile.yaml"]  # nothing written, here or above


def test_a_live_trial_left_by_a_killed_runner_is_refused_not_deleted(tmp_path, quick_trials):
    path = write_sweep(tmp_path)
    folder = tmp_path / "sweep"
    sweep = LocalSweep(path, directory=str(folder))
    sweep.trials = [_interrupted_folder(folder, "trial-0001")]
    sweep.save()
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        from lightning_gen.procs import write_lock

        write_lock(str(folder / "trial-0001" / "trial.lock"), orphan.pid)
        with pytest.raises(SweepError, match=rf"still running .*pid {orphan.pid}"):
            LocalSweep(path, directory=str(folder)).run(1)
        assert (folder / "trial-0001" / "keep.txt").exists() and not quick_trials
    finally:
        orphan.kill()
        orphan.wait()
    LocalSweep(path, directory=str(folder)).run(1)  # the lock is stale now: the trial runs again
    assert json.loads((folder / "results.json").read_text())["trials"][0]["state"] == "finished"


RUNNER = """
import subprocess, sys
real = subprocess.Popen
def fake(cmd, *args, **kwargs):  # the trial: a process that would run for a minute
    if "lightning_gen.cli" in cmd:
        cmd = [sys.executable, "-c", "import time; time.sleep(60.0{token})"]
    return real(cmd, *args, **kwargs)
subprocess.Popen = fake
from lightning_gen.jobs.sweep import LocalSweep
sweep = LocalSweep({path!r}, directory={folder!r})
sweep.trials = [dict(number=1, name="trial-0001", params=dict(), state="finished", metric=1.0)]  # no CLI check
sweep.config["method"] = "grid"
sweep.run(2)
"""


def _pids_with(token: str, runner: int) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token in cmdline and int(pid) != runner and state != "Z":
            out.append(int(pid))
    return out


@pytest.mark.slow  # about 10-20 s: the runner process imports Lightning and W&B's sweep engine
def test_a_trial_dies_with_its_runner(tmp_path):
    """kill -9 of the sweep runner: its running trial goes too (PR_SET_PDEATHSIG on Linux)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only; elsewhere the trial lock protects the folder")
    token = str(os.getpid()) + str(time.monotonic_ns() % 10**6)
    script = RUNNER.format(token=token, path=write_sweep(tmp_path), folder=str(tmp_path / "sweep"))
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not _pids_with(token, runner.pid):
        assert runner.poll() is None and time.monotonic() < deadline, "the trial did not start"
        time.sleep(0.1)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 10
    while _pids_with(token, runner.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _pids_with(token, runner.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "the trial outlived its runner"


def test_a_child_started_by_start_child_dies_with_its_parent(tmp_path):
    """The mechanism of the test above, fast: the parent only imports lightning_gen.procs."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    token = "child" + str(os.getpid()) + str(time.monotonic_ns() % 10**6)
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from lightning_gen.procs import start_child\n"
            f"start_child([sys.executable, '-c', 'import time; time.sleep(60.0{token[5:]})'])\n"
            "time.sleep(60)\n",
        ]
    )
    deadline = time.monotonic() + 30
    while not _pids_with(token[5:], parent.pid):
        assert parent.poll() is None and time.monotonic() < deadline, "the child did not start"
        time.sleep(0.05)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _pids_with(token[5:], parent.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _pids_with(token[5:], parent.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "the child outlived its parent"


def test_results_file_writes_leave_no_temporary_files(tmp_path):
    path = write_sweep(tmp_path)
    sweep = LocalSweep(path, directory=str(tmp_path / "s"))
    sweep.save()
    sweep.save()
    assert sorted(os.listdir(tmp_path / "s")) == ["results.json"]


def test_trial_records_name_no_absolute_run_folder(tmp_path):
    path = write_sweep(tmp_path)
    folder = tmp_path / "s"
    sweep = LocalSweep(path, directory=str(folder))
    trial = {"number": 1, "name": "trial-0001", "params": {}, "trial_dir": "trial-0001", "state": "running"}
    os.makedirs(folder / "trial-0001")
    run_dir = folder / "trial-0001" / "lightning_logs" / "version_0"
    with open(folder / "trial-0001" / "metrics.jsonl", "w") as f:
        f.write(json.dumps({"event": "start", "run_dir": str(run_dir)}) + "\n")
    sweep.trials = [trial]
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    sweep_mod.LocalSweep._follow(sweep, trial, proc, time.monotonic())
    assert trial["run_dir"] == os.path.join("trial-0001", "lightning_logs", "version_0")


def test_a_second_runner_on_the_same_folder_is_refused(tmp_path, quick_trials):
    from lightning_gen.procs import write_lock

    path, folder = write_sweep(tmp_path), tmp_path / "sweep"
    folder.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(str(folder / "runner.lock"), other.pid)
        sweep = LocalSweep(path, directory=str(folder))
        sweep.trials = [{"number": 1, "name": "trial-0001", "params": {}, "state": "finished", "metric": 1.0}]
        with pytest.raises(SweepError, match=rf"Another `lightning-gen sweep` \(pid {other.pid}\)"):
            sweep.run(2)
        assert not quick_trials
    finally:
        other.kill()
        other.wait()
