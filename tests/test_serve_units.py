"""The service's parts without a server: the store's queue and recovery, content sniffing of uploads, the token
comparison, the bind-address rule, the studio page mount."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile

from soundsmith.errors import InvalidArgument
from soundsmith.serve.auth import bearer_ok
from soundsmith.serve.config import Settings, is_loopback
from soundsmith.serve.store import MAX_ATTEMPTS, KeyConflict, QueueFull, Store
from soundsmith.serve.uploads import sniff


def test_store_claims_in_submission_order_and_requeues_interrupted_jobs(tmp_path):
    store = Store(tmp_path)
    a, _ = store.submit({"prompt": "a"}, queue_limit=10)
    b, _ = store.submit({"prompt": "b"}, queue_limit=10)
    assert store.claim().id == a.id  # a runs …
    store.close()
    store = Store(tmp_path)  # … and the process dies: a new one opens the same folder
    assert store.get(a.id).status == "running"
    assert store.recover() == (1, 0)
    again = store.claim()
    assert again.id == a.id and again.attempts == 2  # ahead of b, which was submitted later
    assert store.claim().id == b.id and store.claim() is None


def test_store_gives_up_on_a_job_that_keeps_killing_the_service(tmp_path):
    store = Store(tmp_path)
    job, _ = store.submit({"prompt": "a"}, queue_limit=10)
    for _ in range(MAX_ATTEMPTS - 1):
        store.claim()
        assert store.recover() == (1, 0)
    store.claim()
    assert store.recover() == (0, 1)
    failed = store.get(job.id)
    assert failed.status == "failed" and str(MAX_ATTEMPTS) in failed.error and store.claim() is None


def test_store_idempotency_keys_and_queue_limit(tmp_path):
    store = Store(tmp_path)
    first, created = store.submit({"prompt": "a"}, queue_limit=2, key="k", digest="d1")
    same, again = store.submit({"prompt": "a", "seed": 9}, queue_limit=2, key="k", digest="d1")
    assert created and not again and same.id == first.id and same.request == {"prompt": "a"}
    with pytest.raises(KeyConflict):
        store.submit({"prompt": "b"}, queue_limit=2, key="k", digest="d2")
    store.submit({"prompt": "c"}, queue_limit=2)
    with pytest.raises(QueueFull):
        store.submit({"prompt": "d"}, queue_limit=2)
    assert store.counts()["queued"] == 2
    assert store.submit({"prompt": "a"}, queue_limit=2, key="k", digest="d1")[0].id == first.id  # a retry still answers


def test_cancel_is_final_and_only_for_unfinished_jobs(tmp_path):
    store = Store(tmp_path)
    job, _ = store.submit({"prompt": "a"}, queue_limit=10)
    cancelled, was = store.cancel(job.id)
    assert was == "queued" and cancelled.status == "cancelled" and store.claim() is None
    other, _ = store.submit({"prompt": "b"}, queue_limit=10)
    store.claim()
    assert store.succeed(other.id, [{"seconds": 1.0, "sample_rate": 16000, "score": None}], {"prompt": "b"})
    assert store.cancel(other.id)[1] == "succeeded" and store.get(other.id).status == "succeeded"


def _encoded(format: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(1600), 16000, format=format, subtype=subtype)
    return buffer.getvalue()


def test_uploads_are_sniffed_by_their_bytes():
    assert sniff(_encoded("WAV", "PCM_16")) == "wav"
    assert sniff(_encoded("FLAC")) == "flac"
    assert sniff(_encoded("OGG", "VORBIS")) == "ogg"
    assert sniff(b"ID3\x04\x00" + bytes(11)) == "mp3" and sniff(b"\xff\xfb\x90\x00" + bytes(12)) == "mp3"
    for other in (b"", b"RIFF\0\0\0\0AVI LIST", b"\x89PNG\r\n\x1a\n", b"#!/bin/sh\n", b"\xff\xe0\x00\x00"):
        assert sniff(other) is None


def test_bearer_token_must_match_exactly():
    assert bearer_ok("Bearer abcdefgh12", "abcdefgh12") and bearer_ok("bearer  abcdefgh12 ", "abcdefgh12")
    for header in (None, "", "abcdefgh12", "Basic abcdefgh12", "Bearer abcdefgh1", "Bearer abcdefgh123",
                   "Bearer ABCDEFGH12", "Bearer é"):
        assert not bearer_ok(header, "abcdefgh12")


def test_a_public_bind_needs_a_token():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.20", "example.org"))
    for host in ("0.0.0.0", "::", "10.0.0.2"):
        with pytest.raises(InvalidArgument, match="--token"):
            Settings(host=host)
    assert Settings(host="0.0.0.0", token="long-enough").token == "long-enough"
    with pytest.raises(InvalidArgument, match="--token"):
        Settings(token="short")
    with pytest.raises(InvalidArgument, match="--workers"):
        Settings(workers=0)
    with pytest.raises(InvalidArgument, match=r"--backend 'onnx' is not allowed \(allowed: torch, openvino, fastest\)"):
        Settings(backend="onnx")


def test_warm_pipelines_load_with_the_services_unet_backend(tiny_audioldm, monkeypatch):
    import soundsmith
    from soundsmith.serve.catalog import describe
    from soundsmith.serve.workers import Pipelines

    seen, real_load = [], soundsmith.load

    def fake_load(folder, **options):
        seen.append(options["backend"])
        return real_load(folder, device="cpu", progress=False)

    monkeypatch.setattr(soundsmith, "load", fake_load)
    pipelines = Pipelines({"a": describe("a", tiny_audioldm)}, "cpu", "float32", None, backend="fastest")
    with pipelines.use("a"):
        pass
    assert seen == ["fastest"]


def test_the_studio_page_is_served_at_the_root(tiny_audioldm, tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from soundsmith.serve import app as app_module

    app = app_module.create_app(Settings(models=(str(tiny_audioldm),), data=tmp_path / "data"))
    with TestClient(app) as client:
        assert client.get("/").text.startswith("<!doctype html>")
        assert "javascript" in client.get("/studio/js/app.js").headers["content-type"]
        assert client.get("/studio/__init__.py").status_code == 404  # the page's files only
        assert client.get("/studio/../data/jobs.db").status_code == 404
        assert client.get("/studio/%2e%2e/data/jobs.db").status_code == 404
        assert json.loads(client.get("/v1/models").text)["models"][0]["name"] == "tiny-audioldm"


def test_warm_pipelines_unload_the_least_recently_used_idle_one_under_the_budget(tiny_audioldm):
    from soundsmith.serve.catalog import describe
    from soundsmith.serve.workers import Pipelines, weights_bytes

    models = {name: describe(name, tiny_audioldm) for name in ("a", "b", "c")}
    one = weights_bytes(tiny_audioldm, "float32")
    pipelines = Pipelines(models, "cpu", "float32", budget_bytes=int(2.5 * one))  # room for two
    with pipelines.use("a") as a:
        assert a.name == "a"
    with pipelines.use("b"):
        pass
    with pipelines.use("a") as again:
        assert again is a  # warm: loaded once
    with pipelines.use("c"):
        pass
    assert list(pipelines.loaded) == ["a", "c"]  # b was the least recently used
    with pipelines.use("a"):
        with pipelines.use("c"):
            pass
        assert list(pipelines.loaded) == ["a", "c"]  # a is the least recently used, but busy:
        with pipelines.use("b"):
            assert list(pipelines.loaded) == ["a", "b"]  # c goes instead
