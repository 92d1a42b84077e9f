"""kill -9 loses nothing: jobs submitted to a server that is killed while it runs them all end `succeeded` after a
restart on the same --data, each output exactly once, byte-identical to an uninterrupted run of the same requests
(the seeds were fixed when the jobs were submitted)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

from serving import Server, wait_for  # noqa: E402

ARGS = ("--max-duration", "1", "--max-steps", "1000")
SLOW_JOB = 2  # this job runs long enough (200 steps) to be caught running when the server is killed


def bodies(n: int) -> list[dict]:
    """n requests without seeds (the server fixes them), one of them slow."""
    return [{"prompt": f"sound number {i}", "duration": 0.032, "steps": 200 if i == SLOW_JOB else 2,
             **({"candidates": 2} if i % 4 == 3 else {})} for i in range(n)]


def kill_while_running(tiny_audioldm, tmp_path, n: int) -> None:
    data = tmp_path / "data"
    first = Server(tiny_audioldm, data, *ARGS).start()
    try:
        with first.client() as client:
            ids = []
            for body in bodies(n):
                answer = client.post("/v1/jobs", json=body)
                assert answer.status_code == 202
                ids.append(answer.json()["id"])
            wait_for(client, ids[SLOW_JOB], until=lambda j: j["status"] == "running" and j["progress"] > 0)
            first.kill()
    finally:
        first.stop()

    again = Server(tiny_audioldm, data, *ARGS).start()
    try:
        with again.client() as client:
            jobs = [wait_for(client, i) for i in ids]
            listed = client.get("/v1/jobs", params={"limit": 500}).json()["jobs"]
    finally:
        again.stop()
    assert [j["status"] for j in jobs] == ["succeeded"] * n, [j["error"] for j in jobs]
    assert sorted(j["id"] for j in listed) == sorted(ids)  # no job lost, none duplicated
    assert jobs[SLOW_JOB]["attempts"] == 2  # interrupted, then run again
    assert any(j["attempts"] == 1 for j in jobs[SLOW_JOB + 1:])  # and the queue behind it went on after the restart
    for job, body in zip(jobs, bodies(n)):
        files = sorted(p.name for p in (data / "jobs" / job["id"]).iterdir())
        assert files == [f"{k}.wav" for k in range(body.get("candidates", 1))]  # each output exactly once

    reference = Server(tiny_audioldm, tmp_path / "reference", *ARGS).start()
    try:
        with reference.client() as client:
            remade = [client.post("/v1/jobs", json=job["request"]).json()["id"] for job in jobs]
            for job, other in zip(jobs, remade):
                assert wait_for(client, other)["status"] == "succeeded"
                for k, output in enumerate(job["outputs"]):
                    assert client.get(f"/v1/jobs/{other}/audio/{k}").content == \
                        (data / "jobs" / job["id"] / f"{k}.wav").read_bytes(), f"job {job['id']} output {k}"
    finally:
        reference.stop()


def test_kill_9_while_running_loses_nothing_10_jobs(tiny_audioldm, tmp_path):
    kill_while_running(tiny_audioldm, tmp_path, 10)


@pytest.mark.slow
def test_kill_9_while_running_loses_nothing_50_jobs(tiny_audioldm, tmp_path):
    kill_while_running(tiny_audioldm, tmp_path, 50)
