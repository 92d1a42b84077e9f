"""No network, no wait: one quick probe decides the hub is unreachable, the verdict is remembered for the process,
and a model that is not cached fails with one ModelNotFound line in seconds, without huggingface_hub's retry lines.

The subprocess tests point HF_ENDPOINT at a loopback port (nothing here can reach the real hub) and clear
HF_HUB_OFFLINE, which conftest sets for every other test."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import soundsmith
from soundsmith import ModelNotFound, checkpoints

SRC = str(Path(soundsmith.__file__).resolve().parents[1])
RESOLVE = """
import time
from soundsmith import ModelNotFound
from soundsmith.checkpoints import resolve
started = time.perf_counter()
try:
    resolve("audioldm-s-full-v2")
    print("resolved")
except ModelNotFound as exc:
    print(f"ModelNotFound: {exc}")
print(f"{time.perf_counter() - started:.3f}")
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hub_env(tmp_path, endpoint: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"), PYTHONPATH=SRC)
    return env


def run_resolve(tmp_path, endpoint: str) -> tuple[list[str], str, float]:
    proc = subprocess.run([sys.executable, "-c", RESOLVE], env=hub_env(tmp_path, endpoint), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    return lines[:-1], proc.stderr, float(lines[-1])


def test_a_refused_connection_fails_resolve_at_once_with_one_line(tmp_path):
    lines, stderr, seconds = run_resolve(tmp_path, f"http://127.0.0.1:{closed_port()}")
    assert len(lines) == 1 and lines[0].startswith("ModelNotFound: ")
    assert "unreachable" in lines[0] and "soundsmith download audioldm-s-full-v2" in lines[0]
    assert stderr == ""  # no "Retrying in 1s [Retry 1/5]" lines
    assert seconds < 5.0  # one probe, no retries: the unprobed path took 43 s of back-off


def test_a_hub_that_never_answers_fails_resolve_within_the_probe_timeout(tmp_path):
    with socket.socket() as listener:  # accepts connections (the kernel completes the handshake), never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        lines, stderr, seconds = run_resolve(tmp_path, f"http://127.0.0.1:{listener.getsockname()[1]}")
    assert len(lines) == 1 and lines[0].startswith("ModelNotFound: ")
    assert f"no answer within {checkpoints.HUB_PROBE_TIMEOUT:g} s" in lines[0]
    assert stderr == ""
    assert seconds < 5.0


def test_the_cli_download_prints_one_error_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "soundsmith.cli", "download", "audioldm2"],
                          env=hub_env(tmp_path, f"http://127.0.0.1:{closed_port()}"), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("soundsmith: error: model 'audioldm2'")
    assert "unreachable" in proc.stderr


@pytest.fixture
def online_but_unreachable(monkeypatch):
    """In this process: HF_HUB_OFFLINE off, the endpoint a closed loopback port, no verdict remembered yet, and a
    count of the probes made."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setattr(checkpoints, "_hub_answers", {})
    probes = []
    probe = checkpoints._probe
    monkeypatch.setattr(checkpoints, "_probe", lambda *a: probes.append(a) or probe(*a))
    return probes


def test_the_verdict_is_remembered_for_the_process(online_but_unreachable):
    for _ in range(2):
        with pytest.raises(ModelNotFound, match="unreachable"):
            checkpoints.resolve("soundsmith-tests/no-such-model")
    model, why = checkpoints.default_model()
    assert model == checkpoints.DEMO and "unreachable" in why
    assert len(online_but_unreachable) == 1


def test_offline_mode_never_probes(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(checkpoints, "_probe", lambda *a: pytest.fail("probed the hub with HF_HUB_OFFLINE set"))
    assert checkpoints.hub_unreachable() == "HF_HUB_OFFLINE is set"
    with pytest.raises(ModelNotFound, match="HF_HUB_OFFLINE is set"):
        checkpoints.resolve("soundsmith-tests/no-such-model")


def test_generate_with_an_unreachable_hub_returns_one_line_within_5_s(tmp_path):
    """The README's command with a named model that is not cached, the hub a closed loopback port: a fresh process
    (import, argument checks, one probe) exits with one error line in under 5 s, no retries, no model loaded."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "soundsmith.cli", "generate", "a dog barking", "-m",
                           "audioldm-s-full-v2", "-o", str(tmp_path / "dog.wav")],
                          env=hub_env(tmp_path, f"http://127.0.0.1:{closed_port()}"), capture_output=True, text=True,
                          timeout=120)
    seconds = time.perf_counter() - started
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.count("\n") == 1 and "unreachable" in proc.stderr, proc.stderr
    assert seconds < 5.0, seconds
    assert not (tmp_path / "dog.wav").exists()
