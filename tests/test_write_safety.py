"""Writing files: never replacing a file that appeared meanwhile, no temporary file left by a failure or a signal."""

import errno
import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import soundfile
import torch

import soundsmith
from soundsmith import AudioFileError, InvalidArgument, audio


def tone(seconds: float = 0.5, sample_rate: int = 16000) -> torch.Tensor:
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    return 0.5 * torch.sin(2 * torch.pi * 440 * t)


def test_an_existing_file_is_kept_unless_overwrite_is_asked_for(tmp_path):
    path = tmp_path / "dog.wav"
    path.write_bytes(b"IMPORTANT")
    with pytest.raises(AudioFileError, match="dog.wav: already exists") as e:
        soundsmith.save(path, tone(), 16000)
    assert "\n" not in str(e.value)
    assert path.read_bytes() == b"IMPORTANT" and os.listdir(tmp_path) == ["dog.wav"]
    soundsmith.save(path, tone(), 16000, {"take": 2}, overwrite=True)
    assert audio.read_metadata(path) == {"take": 2} and os.listdir(tmp_path) == ["dog.wav"]


def test_a_file_that_appears_while_writing_is_not_replaced(tmp_path, monkeypatch):
    """The race of issue 20: the name is free when the write starts, someone creates it before the rename."""
    path = tmp_path / "late.wav"
    real_fsync = os.fsync

    def someone_writes_the_name(fd):
        real_fsync(fd)
        path.write_text("IMPORTANT")

    monkeypatch.setattr(os, "fsync", someone_writes_the_name)
    with pytest.raises(AudioFileError, match="late.wav: already exists"):
        audio.write(path, tone(), 16000)
    assert path.read_text() == "IMPORTANT" and os.listdir(tmp_path) == ["late.wav"]


@pytest.mark.parametrize("code", [errno.EPERM, errno.EOPNOTSUPP])
def test_without_hard_links_the_name_is_still_claimed_exclusively(tmp_path, monkeypatch, code):
    def no_links(src, dst, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "a.flac"
    audio.write(path, tone(), 16000, {"n": 1})
    assert audio.read_metadata(path) == {"n": 1} and os.listdir(tmp_path) == ["a.flac"]
    with pytest.raises(AudioFileError, match="already exists"):
        audio.write(path, tone(), 16000, {"n": 2})
    real_fsync = os.fsync

    def someone_writes_the_name(fd):
        real_fsync(fd)
        (tmp_path / "b.flac").write_text("IMPORTANT")

    monkeypatch.setattr(os, "fsync", someone_writes_the_name)
    with pytest.raises(AudioFileError, match="b.flac: already exists"):
        audio.write(tmp_path / "b.flac", tone(), 16000)
    assert (tmp_path / "b.flac").read_text() == "IMPORTANT"
    assert sorted(os.listdir(tmp_path)) == ["a.flac", "b.flac"]


@pytest.mark.parametrize("rate", [2**40, 0, -16000, 16000.5, float("nan"), float("inf"), True, "16000", None,
                                  10**6])
def test_absurd_sample_rates_are_refused_with_one_line(tmp_path, rate):
    with pytest.raises(InvalidArgument, match="sample_rate=") as e:
        soundsmith.save(tmp_path / "a.wav", tone(), rate)
    assert "\n" not in str(e.value) and os.listdir(tmp_path) == []


def test_flac_is_refused_above_its_own_rate_ceiling(tmp_path):
    with pytest.raises(InvalidArgument, match="655350"):
        audio.write(tmp_path / "a.flac", tone(0.01), 700000)
    audio.write(tmp_path / "a.wav", tone(0.01), 700000)
    assert soundfile.info(str(tmp_path / "a.wav")).samplerate == 700000


# A child writes one 60 s FLAC after another; it is stopped by a signal at several moments of the write.
# The child hangs up as a terminal's process does: a suite run under `nohup` would hand it an ignored SIGHUP, which
# signals_held rightly keeps ignoring (the writer would then run to its end and exit 0).
WRITER = textwrap.dedent("""
    import os, signal, sys, torch
    from soundsmith import audio
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    folder, x = sys.argv[1], 0.1 * torch.randn(960000, generator=torch.Generator().manual_seed(0))
    sys.stdin.readline()  # go
    try:
        for i in range(1000):
            print(f"writing {i}", flush=True)
            audio.write(os.path.join(folder, f"take{i}.flac"), x, 16000, {"take": i})
    except KeyboardInterrupt:
        sys.exit(130)
""")


def test_a_signal_at_any_moment_of_a_write_leaves_no_temporary_file(tmp_path):
    """SIGTERM / SIGINT / SIGHUP at several delays into a write: the writer stops by that signal, no `.tmp` file
    remains, and every file there is complete (all its samples, its metadata)."""
    cases = [(signal.SIGTERM, 0.0), (signal.SIGTERM, 0.004), (signal.SIGTERM, 0.03), (signal.SIGINT, 0.002),
             (signal.SIGINT, 0.015), (signal.SIGHUP, 0.008)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(os.path.dirname(audio.__file__)),
                                                        os.environ.get("PYTHONPATH", "")])}
    children = []
    for k, (signum, delay) in enumerate(cases):  # started together: each pays torch's import once, in parallel
        folder = tmp_path / f"case{k}"
        folder.mkdir()
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, env=env)
        children.append((child, folder, signum, delay))
    expected = 0.1 * torch.randn(960000, generator=torch.Generator().manual_seed(0))
    try:
        for child, folder, signum, delay in children:
            reader = threading.Timer(120, child.kill)  # bounded: a stuck child fails the test instead of hanging it
            reader.start()
            child.stdin.write("go\n")
            child.stdin.flush()
            while child.stdout.readline().strip() != "writing 2":  # takes 0 and 1 are written, 2 is under way
                assert child.poll() is None, "the writer died before its third write"
            reader.cancel()
            threading.Event().wait(delay)
            child.send_signal(signum)
            code = child.wait(timeout=120)
            assert code in (-signum, 130), (signum, code)
            names = sorted(os.listdir(folder))
            assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")], names
            assert {"take0.flac", "take1.flac"} <= set(names), names
            for name in names:
                data, rate = soundfile.read(str(folder / name), dtype="float32")
                assert rate == 16000 and data.shape == (960000,), name
                np.testing.assert_allclose(data, expected.numpy(), atol=2**-15)
                assert audio.read_metadata(folder / name) == {"take": int(name[4:-5])}
    finally:
        for child, *_ in children:
            if child.poll() is None:
                child.kill()
                child.wait()
