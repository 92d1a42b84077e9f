"""machine.py: a per-machine measurement (the float32 linear path) is made once and read back by later processes;
a missing, corrupt or unwritable cache only means measuring again."""

import json

import pytest

from soundsmith import machine, runtime


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SOUNDSMITH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_measurement_is_made_once_per_machine_and_read_back(cache):
    calls = []
    assert machine.remembered("thing", lambda: calls.append(1) or "a") == "a"
    assert machine.remembered("thing", lambda: calls.append(1) or "b") == "a"
    assert calls == [1]
    stored = json.loads((cache / machine.FILE).read_text())
    assert stored == {machine.machine_key(): {"thing": "a"}}
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]  # written atomically, nothing left over


def test_another_machine_key_measures_again(cache, monkeypatch):
    machine.remembered("thing", lambda: "a")
    monkeypatch.setattr(machine, "cpu_model", lambda: "some other CPU")
    assert machine.remembered("thing", lambda: "b") == "b"
    assert len(json.loads((cache / machine.FILE).read_text())) == 2


def test_a_corrupt_cache_is_measured_over(cache):
    cache.mkdir()
    (cache / machine.FILE).write_text("{not json")
    assert machine.remembered("thing", lambda: "a") == "a"
    assert json.loads((cache / machine.FILE).read_text())[machine.machine_key()] == {"thing": "a"}


def test_an_unwritable_cache_still_gives_the_measurement(cache):
    cache.write_text("a file where the cache folder should be")  # nothing can be written under it, even as root
    assert machine.remembered("thing", lambda: "a") == "a"
    assert machine.remembered("thing", lambda: "b") == "b"  # nothing was remembered: measured again


def test_linear_path_reads_the_remembered_verdict_instead_of_measuring(cache, monkeypatch):
    monkeypatch.setenv("SOUNDSMITH_CPU_LINEAR", "auto")
    cache.mkdir()
    (cache / machine.FILE).write_text(json.dumps({machine.machine_key(): {"linear_path": "onednn"}}))
    monkeypatch.setattr(runtime, "_measure_linear_paths", lambda: pytest.fail("measured again"))
    runtime.set_linear_path(None)
    try:
        assert runtime.linear_path() == "onednn"
    finally:
        runtime.set_linear_path(None)


def test_linear_path_measures_once_on_a_new_machine(cache, monkeypatch):
    monkeypatch.setenv("SOUNDSMITH_CPU_LINEAR", "auto")
    measured = []
    monkeypatch.setattr(runtime, "_measure_linear_paths", lambda: measured.append(1) or "blas")
    for _ in range(2):  # two "processes": the module's verdict is forgotten in between
        runtime.set_linear_path(None)
        assert runtime.linear_path() == "blas"
    runtime.set_linear_path(None)
    assert measured == [1]
