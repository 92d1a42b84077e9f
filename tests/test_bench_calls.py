"""The benchmark's two implementations (bench/worker.py) still call what the libraries offer: every timed call of
soundsmith and of diffusers runs on a tiny model and gives the same shapes. Timings are bench/'s business, not a
test's; this only keeps a refactor from silently breaking the soundsmith column (issue 13 did once)."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("fixture", ["tiny_audioldm", "tiny_audioldm2"])
def test_every_timed_call_runs_in_both_implementations(request, fixture, tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    monkeypatch.setenv("SOUNDSMITH_CACHE", str(tmp_path))
    sys.path.insert(0, str(BENCH))
    try:
        import worker
    finally:
        sys.path.remove(str(BENCH))
    folder = request.getfixturevalue(fixture)
    latents = torch.randn(worker.latent_shape(folder, 0.2), generator=torch.Generator().manual_seed(0))
    results = {}
    with torch.no_grad():
        kinds = [("diffusers", worker.reference), ("soundsmith", worker.ours)]
        if importlib.util.find_spec("openvino"):  # bench.py --ours-openvino
            kinds.append(("soundsmith+OpenVINO UNet", lambda *a: worker.ours(*a, backend="openvino")))
        for kind, load in kinds:
            impl = load(folder, torch.float32, 0.2)
            calls = worker.calls(impl, latents)
            results[kind] = {stage: calls[stage]() for stage in ("unet", "vae", "vocoder")}
            results[kind]["e2e"] = calls["e2e"](2)
    for stage, ours in results["soundsmith"].items():
        theirs = results["diffusers"][stage]
        assert tuple(ours.shape) == tuple(theirs.shape), stage


@pytest.mark.parametrize("fixture", ["tiny_audioldm", "tiny_audioldm2"])
@pytest.mark.parametrize("kind, batch, mode", [("ref", 1, ""), ("ours", 1, ""), ("ours", 3, ""),
                                              ("ours", 1, "openvino")])
def test_throughput_makes_the_clips_it_counts(request, fixture, kind, batch, mode, tmp_path, monkeypatch):
    """bench/throughput.py's process: warm-up call, then exactly --clips clips in calls of --batch prompts."""
    pytest.importorskip("diffusers")
    import numpy as np

    if mode == "openvino":
        pytest.importorskip("openvino")
        monkeypatch.setenv("SOUNDSMITH_CACHE", str(tmp_path))
    monkeypatch.syspath_prepend(str(BENCH))  # the process imports bench/ modules as it goes
    import throughput
    folder = request.getfixturevalue(fixture)
    saved = tmp_path / "first.npy"
    args = throughput.argparse.Namespace(model=str(folder), kind=kind, batch=batch, clips=4, steps=2, seconds=0.2,
                                         dtype="float32", mode=mode, save=saved)
    with torch.no_grad():  # the process switches gradients off for good; the context gives them back to later tests
        result = throughput.child(args)
    assert torch.is_grad_enabled()
    assert result["clips"] == 4 and result["per_min"] > 0
    first = np.load(saved)
    assert first.ndim == 1 and first.size > 0 and np.isfinite(first).all()
