"""`soundsmith serve` over real HTTP: a uvicorn subprocess on a free loopback port serving the tiny random AudioLDM,
driven with httpx (see serving.py). Jobs are tiny (16-32 ms of audio, 2 steps) so the tests prove the service,
not the model."""

from __future__ import annotations

import http.client
import io
import json

import numpy as np
import pytest
import soundfile

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from serving import Server, wait_for, wait_idle  # noqa: E402

from soundsmith import Request  # noqa: E402
from soundsmith.audio import read_metadata  # noqa: E402

TOKEN = "s3cret-token-for-tests"
LONG_STEPS = 1000  # a job that runs long enough to be caught running and stopped (tens of ms a step)


def quick(**fields) -> dict:
    return {"prompt": "rain on a tin roof", "duration": 0.032, "steps": 2, **fields}


def wav_bytes(seconds: float = 0.1, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    soundfile.write(buffer, 0.3 * np.sin(2 * np.pi * 440 * t), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tiny_audioldm, tmp_path_factory):
    server = Server(tiny_audioldm, tmp_path_factory.mktemp("serve") / "data", "--max-duration", "1",
                    "--max-steps", str(LONG_STEPS), "--max-candidates", "3", "--max-upload-mb", "1")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server):
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def guarded(tiny_audioldm, tmp_path_factory):
    """A server with a token and room for one queued job."""
    server = Server(tiny_audioldm, tmp_path_factory.mktemp("guarded") / "data", "--queue-size", "1",
                    "--max-steps", str(LONG_STEPS), token=TOKEN)
    server.start()
    yield server
    server.stop()


def test_submit_poll_download_gives_a_wav_with_the_request_in_its_metadata(client, tmp_path):
    answer = client.post("/v1/jobs", json=quick())
    assert answer.status_code == 202
    job = answer.json()
    assert job["status"] == "queued" and job["id"].startswith("job_") and job["outputs"] == []
    assert isinstance(job["request"]["seed"], int)  # fixed at submit: a re-run makes the same sound
    assert job["request"]["model"] == "tiny-audioldm"
    done = wait_for(client, job["id"])
    assert done["status"] == "succeeded" and done["progress"] == 1 and done["error"] is None
    assert done["created"] <= done["started"] <= done["finished"]
    assert done["request"]["steps"] == 2 and done["request"]["seed"] == job["request"]["seed"]
    [output] = done["outputs"]
    assert output["url"] == f"/v1/jobs/{job['id']}/audio/0"
    assert output["sample_rate"] == 16000 and output["seconds"] == pytest.approx(0.032)
    audio = client.get(output["url"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    path = tmp_path / "out.wav"
    path.write_bytes(audio.content)
    samples, rate = soundfile.read(path)
    assert rate == 16000 and len(samples) == round(0.032 * 16000)
    assert Request.from_metadata(read_metadata(path)) == Request.from_dict(done["request"])


def test_range_requests_and_flac_give_the_same_audio(client, tmp_path):
    job = wait_for(client, client.post("/v1/jobs", json=quick(seed=3)).json()["id"])
    url = job["outputs"][0]["url"]
    whole = client.get(url).content
    part = client.get(url, headers={"Range": "bytes=10-29"})
    assert part.status_code == 206 and part.content == whole[10:30]
    assert part.headers["content-range"] == f"bytes 10-29/{len(whole)}"
    flac = client.get(url, params={"format": "flac"})
    assert flac.status_code == 200 and flac.headers["content-type"] == "audio/flac" and flac.content[:4] == b"fLaC"
    (tmp_path / "a.wav").write_bytes(whole)
    (tmp_path / "a.flac").write_bytes(flac.content)
    assert np.array_equal(soundfile.read(tmp_path / "a.wav", dtype="int16")[0],
                          soundfile.read(tmp_path / "a.flac", dtype="int16")[0])
    assert read_metadata(tmp_path / "a.flac") == read_metadata(tmp_path / "a.wav")
    assert client.get(url, params={"format": "flac"}).content == flac.content  # made once, then served


def test_events_stream_the_job_until_it_ends(client):
    job = client.post("/v1/jobs", json=quick(steps=100)).json()
    events = []
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["status"] == "succeeded" and events[-1]["outputs"]
    assert all(e["status"] not in ("succeeded", "failed", "cancelled") for e in events[:-1])
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress) and len(set(progress)) > 2  # steps reported as they happen


def test_cancel_a_queued_job_never_runs_it_and_a_running_job_stops(client):
    running = client.post("/v1/jobs", json=quick(steps=LONG_STEPS, duration=0.064)).json()
    queued = client.post("/v1/jobs", json=quick()).json()
    wait_for(client, running["id"], until=lambda j: j["status"] == "running" and j["progress"] > 0)
    cancelled = client.delete(f"/v1/jobs/{queued['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    stopped = client.delete(f"/v1/jobs/{running['id']}")
    assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
    wait_idle(client)
    after = client.get(f"/v1/jobs/{running['id']}").json()
    assert after["status"] == "cancelled" and after["outputs"] == []
    assert after["progress"] < 0.5  # it stopped at a step soon after the cancel, far from its end
    never = client.get(f"/v1/jobs/{queued['id']}").json()
    assert never["status"] == "cancelled" and never["started"] is None and never["attempts"] == 0
    assert client.get(f"/v1/jobs/{running['id']}/audio/0").status_code == 409
    assert client.delete(f"/v1/jobs/{queued['id']}").status_code == 200  # cancelling again changes nothing
    assert wait_for(client, client.post("/v1/jobs", json=quick()).json()["id"])["status"] == "succeeded"


def test_an_idempotent_retry_returns_the_same_job(client):
    key = {"Idempotency-Key": "retry-me-1"}
    first = client.post("/v1/jobs", json=quick(prompt="a kettle whistling"), headers=key)
    again = client.post("/v1/jobs", json=quick(prompt="a kettle whistling"), headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    assert again.json()["request"]["seed"] == first.json()["request"]["seed"]
    other = client.post("/v1/jobs", json=quick(prompt="a different sound"), headers=key)
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]
    listed = client.get("/v1/jobs", params={"limit": 500}).json()["jobs"]
    assert sum(j["request"]["prompt"] == "a kettle whistling" for j in listed) == 1


@pytest.mark.parametrize("body, field", [
    (quick(steps=0), "steps"),
    (quick(steps=LONG_STEPS + 1), "steps"),
    (quick(duration=2.0), "duration"),
    (quick(duration=0.0001), "duration"),
    (quick(candidates=4), "candidates"),
    (quick(model="demo"), "model"),
    (quick(model="/etc"), "model"),
    (quick(ranker="/tmp"), "ranker"),
    ({"task": "vary", "input": "upl_0123456789abcdef", "clap": "/tmp"}, "clap"),
    (quick(guidance=-1), "guidance"),
    (quick(colour="red"), "colour"),
    ({"task": "transfer", "prompt": "jazz", "input": "/etc/passwd"}, "input"),
    ({"task": "reconstruct", "input": "upl_0123456789abcdef"}, "input"),
    ({"task": "paint", "prompt": "x"}, "task"),
    ([1, 2], "JSON object"),
])
def test_bad_requests_answer_422_with_one_line_naming_the_field(client, body, field):
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and field in detail


def test_bad_bodies_and_queries_answer_4xx_with_one_line(client):
    for answer, field in [
        (client.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}), "JSON"),
        (client.post("/v1/jobs", json=quick(), headers={"Idempotency-Key": "a b"}), "Idempotency-Key"),
        (client.get("/v1/jobs", params={"status": "done"}), "status"),
        (client.get("/v1/jobs", params={"limit": "-3"}), "limit"),
        (client.get("/v1/jobs", params={"before": "yesterday"}), "before"),
    ]:
        assert answer.status_code == 422, answer.text
        assert field in answer.json()["detail"] and "\n" not in answer.json()["detail"]
    job = wait_for(client, client.post("/v1/jobs", json=quick()).json()["id"])
    answer = client.get(job["outputs"][0]["url"], params={"format": "mp3"})
    assert answer.status_code == 422 and "format" in answer.json()["detail"]
    assert client.post("/v1/jobs", content=b"x" * (2 << 20)).status_code == 413


def test_jobs_list_newest_first_with_paging_and_status_filter(client):
    ids = [client.post("/v1/jobs", json=quick(seed=i)).json()["id"] for i in range(3)]
    page = client.get("/v1/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2] and page["next"] == ids[1]
    rest = client.get("/v1/jobs", params={"limit": 1, "before": page["next"]}).json()
    assert [j["id"] for j in rest["jobs"]] == [ids[0]]
    for i in ids:
        wait_for(client, i)
    done = client.get("/v1/jobs", params={"status": "succeeded", "limit": 500}).json()["jobs"]
    assert set(ids) <= {j["id"] for j in done} and all(j["status"] == "succeeded" for j in done)


def test_uploads_are_checked_by_content_and_used_by_id(client, server):
    wav = wav_bytes()
    named_wrong = client.post("/v1/uploads", files={"file": ("song.mp3", wav, "audio/mpeg")})
    assert named_wrong.status_code == 201 and named_wrong.json()["format"] == "wav"
    assert named_wrong.json()["seconds"] == pytest.approx(0.1)
    raw = client.post("/v1/uploads", content=wav, headers={"content-type": "application/octet-stream"})
    assert raw.status_code == 201 and raw.json()["id"] != named_wrong.json()["id"]
    text = client.post("/v1/uploads", files={"file": ("sound.wav", b"#!/bin/sh\necho not audio\n", "audio/wav")})
    assert text.status_code == 415 and "\n" not in text.json()["detail"]
    broken = client.post("/v1/uploads", content=wav[:12] + b"\0" * 40)
    assert broken.status_code == 422 and "decode" in broken.json()["detail"]
    assert client.post("/v1/uploads", content=b"").status_code == 422
    assert client.post("/v1/uploads", content=b"RIFF" + b"\0" * (2 << 20)).status_code == 413
    stored = sorted(p.name for p in (server.data / "uploads").iterdir())
    assert stored == sorted(f"{u.json()['id']}.wav" for u in (named_wrong, raw))  # nothing else kept
    upload = named_wrong.json()["id"]
    for body, seconds in [({"task": "reconstruct"}, 0.1),  # every audio task, over HTTP
                          ({"task": "transfer", "prompt": "jazz drums", "strength": 0.6}, 0.1),
                          ({"task": "inpaint", "prompt": "a bell", "masks": [[0.02, 0.05]]}, 0.1),
                          ({"task": "upscale", "cutoff": 3000}, 0.1),
                          ({"task": "extend", "prompt": "more rain", "seconds": 0.05}, 0.15)]:
        body = {**body, "input": upload, **({"steps": 2} if body["task"] != "reconstruct" else {})}
        job = wait_for(client, client.post("/v1/jobs", json=body).json()["id"])
        assert job["status"] == "succeeded", job["error"]
        assert job["request"]["input"] == upload and job["request"]["task"] == body["task"]
        assert job["outputs"][0]["seconds"] == pytest.approx(seconds)
    outside = client.post("/v1/jobs", json={"task": "inpaint", "input": upload, "prompt": "x", "masks": [[0.05, 0.5]]})
    assert outside.status_code == 422 and "mask" in outside.json()["detail"]


def test_models_health_and_metrics(client):
    [model] = client.get("/v1/models").json()["models"]
    assert model["name"] == "tiny-audioldm" and model["family"] == "AudioLDM" and model["sample_rate"] == 16000
    assert model["default"] is True and isinstance(model["loaded"], bool)
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["workers"] == 1
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "soundsmith_queue_length " in metrics.text and 'soundsmith_jobs{status="succeeded"}' in metrics.text
    assert 'soundsmith_job_seconds_count{outcome="succeeded"}' in metrics.text


TRAVERSALS = ["..", "../jobs.db", "%2e%2e", "%2e%2e%2fjobs.db", "..%2f..%2fetc%2fpasswd", "..%5cjobs.db",
              "%00", "job_0123456789abcdef%2f..%2f..%2fjobs.db", "jobs.db", "/etc/passwd", "....//....//etc/passwd"]


def test_path_traversal_on_every_route_answers_404(client, server):
    job = wait_for(client, client.post("/v1/jobs", json=quick()).json()["id"])["id"]
    templates = [("GET", "/v1/jobs/{x}"), ("DELETE", "/v1/jobs/{x}"), ("GET", "/v1/jobs/{x}/events"),
                 ("GET", "/v1/jobs/{x}/audio/0"), ("GET", f"/v1/jobs/{job}/audio/{{x}}"),
                 ("GET", f"/v1/jobs/{job}/audio/{{x}}?format=flac"), ("GET", "/v1/uploads/{x}"),
                 ("POST", "/v1/jobs/{x}"), ("POST", "/v1/uploads/{x}"), ("GET", "/studio/{x}"), ("GET", "/{x}"),
                 ("GET", "/v1/models/{x}")]
    for method, template in templates:
        for attack in TRAVERSALS:
            path = template.replace("{x}", attack)
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            connection.request(method, path)  # sent as written: no client-side normalisation
            answer = connection.getresponse()
            body = answer.read()
            connection.close()
            assert answer.status in (404, 405), f"{method} {path} → {answer.status} {body[:200]!r}"
            assert b"SQLite" not in body and b"root:" not in body
    for index in ("-1", "1", "01x", "1e3", "99999999999999999999"):
        assert client.get(f"/v1/jobs/{job}/audio/{index}").status_code == 404


def test_a_token_is_required_on_every_v1_route_and_metrics(guarded):
    with guarded.client(token="") as anonymous, guarded.client(token="wrong-token-123") as wrong, \
            guarded.client() as right:
        for path in ("/v1/models", "/v1/jobs", "/v1/jobs/job_0123456789abcdef", "/metrics"):
            for other in (anonymous, wrong):
                answer = other.get(path)
                assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
                assert "token" in answer.json()["detail"]
        assert anonymous.post("/v1/jobs", json=quick()).status_code == 401
        assert anonymous.post("/v1/uploads", content=wav_bytes()).status_code == 401
        assert anonymous.get("/healthz").status_code == 200
        assert right.get("/v1/models").status_code == 200 and right.get("/metrics").status_code == 200


def test_a_full_queue_answers_429_with_retry_after(guarded):
    with guarded.client() as client:
        running = client.post("/v1/jobs", json=quick(steps=LONG_STEPS, duration=0.064)).json()
        wait_for(client, running["id"], until=("running",))
        queued = client.post("/v1/jobs", json=quick())
        assert queued.status_code == 202
        full = client.post("/v1/jobs", json=quick())
        assert full.status_code == 429 and int(full.headers["retry-after"]) >= 1
        assert "queue" in full.json()["detail"]
        client.delete(f"/v1/jobs/{queued.json()['id']}")
        assert client.post("/v1/jobs", json=quick()).status_code == 202  # room again
        client.delete(f"/v1/jobs/{running['id']}")


def test_a_public_address_without_a_token_refuses_to_start(tiny_audioldm, tmp_path, capsys, monkeypatch):
    from soundsmith.cli import main

    monkeypatch.delenv("SOUNDSMITH_TOKEN", raising=False)
    code = main(["serve", "--host", "0.0.0.0", "--models", str(tiny_audioldm), "--data", str(tmp_path / "data")])
    stderr = capsys.readouterr().err
    assert code == 2 and stderr.startswith("soundsmith: error: --host 0.0.0.0 is not a loopback address")
    assert stderr.strip().count("\n") == 0 and "--token" in stderr
    assert not (tmp_path / "data").exists()
