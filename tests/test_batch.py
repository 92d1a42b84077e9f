"""soundsmith batch: every line made once, the same bytes whoever makes it, across kills, reruns and Ray actors.

The workers run one CPU thread each, so the bytes of a line do not depend on how many workers there are."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from soundsmith import InvalidArgument, Request, batch
from soundsmith.audio import read_metadata
from soundsmith.batch.ledger import FAILURES, MANIFEST, Ledger, sha256_file
from soundsmith.cli import main

SETTINGS = dict(defaults={"steps": 2}, threads=1, progress=False)
FAILING_LINE = 15


def write_jobs(path: Path, count: int = 20) -> Path:
    """`count` lines after a comment: prompts, one with its own seed and name, two candidates, one failing."""
    lines = ["# test sounds"]
    for number in range(2, count + 2):
        if number == 5:
            line = {"prompt": "a named sound", "seed": 7, "name": "named"}
        elif number == 9:
            line = {"prompt": "two takes", "candidates": 2, "rank": False, "guidance": 3.0}
        elif number == FAILING_LINE:
            line = {"task": "reconstruct", "input": str(path.parent / "missing.wav")}
        else:
            line = {"prompt": f"sound {number}", **({"negative_prompt": "noise"} if number % 4 == 0 else {})}
        lines.append(json.dumps(line))
    path.write_text("\n".join(lines) + "\n")
    return path


def records(folder: Path, name: str = MANIFEST) -> list[dict]:
    return [json.loads(line) for line in (folder / name).read_text().splitlines()]


def audio_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".wav"}


def assert_every_line_once(folder: Path, lines: int = 20) -> None:
    done = records(folder)
    numbers = sorted(r["line"] for r in done)
    assert numbers == [n for n in range(2, lines + 2) if n != FAILING_LINE]
    for record in done:
        assert sha256_file(folder / record["file"]) == record["sha256"]
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    return write_jobs(tmp_path_factory.mktemp("jobs") / "jobs.jsonl")


@pytest.fixture(scope="module")
def one_worker(jobs, tiny_audioldm, tmp_path_factory):
    """The batch made by one local worker: the bytes every other way of running it must give."""
    folder = tmp_path_factory.mktemp("one") / "out"
    summary = batch.run(jobs, folder, workers=1, **_with_model(tiny_audioldm))
    return folder, summary


def _with_model(model) -> dict:
    return {**SETTINGS, "defaults": {**SETTINGS["defaults"], "model": str(model)}}


def test_each_line_gets_its_seed_and_name_from_the_line_alone(tmp_path):
    listing = tmp_path / "sounds.txt"
    listing.write_text("# a comment\na dog barking|dog\n\nrain on a tin roof\n")
    first = batch.plan(listing, base_seed=3)
    assert [(i.line, i.files) for i in first] == [(2, ("dog.wav",)), (4, ("000004_rain_on_a_tin_roof.wav",))]
    assert [i.request.seed for i in first] == [batch.derive_seed(3, 2), batch.derive_seed(3, 4)]
    assert batch.derive_seed(3, 4) != batch.derive_seed(4, 4)
    assert batch.plan(listing, {"seed": 99}, base_seed=3) == first  # --seed is the base, never every line's seed
    jsonl = write_jobs(tmp_path / "jobs.jsonl")
    named = {i.line: i for i in batch.plan(jsonl)}
    assert named[5].request.seed == 7 and named[5].files == ("named.wav",)
    assert named[9].files == ("000009_two_takes_1.wav", "000009_two_takes_2.wav")
    assert named[FAILING_LINE].request.seed is None  # reconstruct draws nothing
    assert named[6].request.seed == batch.derive_seed(0, 6) == 1608556364  # the same on every machine


def test_folders_named_relative_to_the_batch_reach_every_worker_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clap").mkdir()
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"task": "vary", "input": "loop.wav", "clap": "clap", "model": "clap"}\n'
                    '{"prompt": "rain", "ranker": "clap", "candidates": 2}\n')
    first, second = (item.request for item in batch.plan(jobs))
    folder = str(tmp_path / "clap")
    assert (first.input, first.clap, first.model, second.ranker) == (str(tmp_path / "loop.wav"), folder, folder, folder)


def test_bad_lines_are_all_listed_before_any_work(capsys, tmp_path):
    listing = tmp_path / "jobs.jsonl"
    listing.write_text('{"prompt": "fine"}\n{"prompt": "oops"\n{"prompt": "x", "promt": 1}\n{"prompt": "y", '
                       '"name": "a"}\n{"prompt": "z", "name": "a"}\n')
    assert main(["batch", str(listing), "--out", str(tmp_path / "out"), "-m", "demo"]) == 2
    stderr = capsys.readouterr().err
    assert "line 2: not valid JSON" in stderr and "line 3: unknown key 'promt'" in stderr
    assert "line 5: output name 'a.wav' is already used by line 4" in stderr
    assert "3 bad lines, nothing was run" in stderr
    assert not (tmp_path / "out").exists()


def test_one_and_two_local_workers_write_the_same_bytes_per_line(one_worker, jobs, tiny_audioldm, tmp_path):
    folder, summary = one_worker
    assert (summary.made, summary.failed, summary.skipped) == (19, 1, 0)
    assert_every_line_once(folder)
    two = batch.run(jobs, tmp_path / "two", workers=2, **_with_model(tiny_audioldm))
    assert two.workers == ["local-0", "local-1"] and two.made == 19
    assert {r["worker"] for r in records(tmp_path / "two")} == {"local-0", "local-1"}
    assert audio_files(tmp_path / "two") == audio_files(folder) and len(audio_files(folder)) == 20
    record = next(r for r in records(folder) if r["line"] == 7)
    stored = Request.from_metadata(read_metadata(folder / record["file"]))
    assert stored == Request.from_dict(record["request"]) and stored.seed == batch.derive_seed(0, 7)


def test_a_failing_line_lands_in_failures_and_the_batch_goes_on(one_worker):
    folder, _ = one_worker
    (failure,) = records(folder, FAILURES)
    assert failure["line"] == FAILING_LINE and failure["error"].endswith("missing.wav: no such file")
    assert "\n" not in failure["error"] and failure["request"]["task"] == "reconstruct"


def test_rerun_remakes_only_missing_changed_or_torn_lines(one_worker, jobs, tiny_audioldm, tmp_path):
    original, _ = one_worker
    folder = tmp_path / "out"
    shutil.copytree(original, folder)
    by_line = {r["line"]: r for r in records(folder)}
    (folder / by_line[3]["file"]).unlink()
    (folder / by_line[4]["file"]).write_bytes(b"changed")
    with open(folder / MANIFEST, "ab") as f:  # a crash in the middle of an append
        f.write(b'{"line": 99, "fi')
    summary = batch.run(jobs, folder, workers=1, **_with_model(tiny_audioldm))
    assert (summary.skipped, summary.made, summary.failed) == (17, 2, 1)
    assert_every_line_once(folder)
    assert audio_files(folder) == audio_files(original)
    with pytest.raises(InvalidArgument, match="made with steps=2, but .* now asks for steps=3"):
        batch.run(jobs, folder, **{**_with_model(tiny_audioldm), "defaults": {"steps": 3,
                                                                               "model": str(tiny_audioldm)}})


def test_batch_killed_mid_way_then_rerun_makes_every_line_once(jobs, tiny_audioldm, tmp_path):
    folder = tmp_path / "out"
    command = [sys.executable, "-m", "soundsmith.cli", "batch", str(jobs), "--out", str(folder), "-m",
               str(tiny_audioldm), "--steps", "10", "--workers", "2", "--threads", "1", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not ((folder / MANIFEST).exists() and len((folder / MANIFEST).read_bytes().splitlines()) >= 3):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()
        time.sleep(0.02)
    assert process.poll() is None, "the batch finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)  # the driver only: its workers see the pipe close and leave
    process.wait()
    process.stderr.close()
    assert len(records(folder)) < 19
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 1, rerun.stderr  # the failing line
    assert "1 failed" in rerun.stderr
    assert_every_line_once(folder)


def test_a_folder_holds_one_batch_at_a_time(tmp_path):
    first = Ledger(tmp_path)
    try:
        with pytest.raises(InvalidArgument, match=f"in use by another soundsmith batch \\(pid {os.getpid()}\\)"):
            Ledger(tmp_path)
    finally:
        first.close()
    Ledger(tmp_path).close()


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_a_local_ray_cluster_writes_the_same_bytes_per_line(one_worker, jobs, tiny_audioldm, ray_cluster, tmp_path):
    summary = batch.run(jobs, tmp_path / "ray", ray=True, workers=2, **_with_model(tiny_audioldm))
    assert summary.workers == ["ray-0", "ray-1"] and (summary.made, summary.failed) == (19, 1)
    assert_every_line_once(tmp_path / "ray")
    assert audio_files(tmp_path / "ray") == audio_files(one_worker[0])


def test_a_killed_ray_actor_has_its_lines_made_elsewhere(one_worker, jobs, tiny_audioldm, ray_cluster, tmp_path):
    killed = []

    def kill_first_actor(record):
        if not killed:
            killed.append(record["pid"])
            os.kill(record["pid"], signal.SIGKILL)

    summary = batch.run(jobs, tmp_path / "ray", ray=True, workers=2, on_record=kill_first_actor,
                        **_with_model(tiny_audioldm))
    assert killed and summary.made == 19
    assert_every_line_once(tmp_path / "ray")
    assert killed[0] not in {r["pid"] for r in records(tmp_path / "ray")[1:]}
    assert audio_files(tmp_path / "ray") == audio_files(one_worker[0])
