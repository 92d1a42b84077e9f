"""int8 mode: the UNet's transformer linear layers int8 (soundsmith.quantize), everything else float32."""

import numpy as np
import pytest
import torch

import soundsmith
from soundsmith import quantize
from soundsmith.errors import InvalidArgument
from soundsmith.models.layers import Linear
from soundsmith.pipelines import is_int8, resolve_dtype

pytestmark = pytest.mark.skipif(not quantize.available(), reason="no quantized engine in this torch build")


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("shape", [(300, 64), (2, 150, 64), (1, 64)])
def test_int8_linear_stays_within_a_percent_of_float32(shape):
    torch.manual_seed(0)
    linear = Linear(64, 48)
    x = torch.randn(shape)
    with torch.no_grad():
        got, expected = quantize.Int8Linear(linear)(x), linear(x)
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert 1e-5 < rel_err(got, expected) < 2e-2  # quantised (not the float32 product), and close to it


def test_int8_is_a_mode_over_float32():
    assert resolve_dtype("int8") == resolve_dtype(torch.int8) == torch.float32
    assert is_int8("int8") and is_int8(torch.int8) and not is_int8("float32") and not is_int8(torch.float32)
    with pytest.raises(InvalidArgument, match="dtype='int4'.*float32, bfloat16, float16, int8"):
        resolve_dtype("int4")


def test_int8_pipeline_quantises_the_unet_transformers_and_stays_close_to_float32(tiny_audioldm):
    full = soundsmith.load(tiny_audioldm, device="cpu")
    int8 = soundsmith.load(tiny_audioldm, device="cpu", dtype="int8")
    quantised = [m for m in int8.unet.modules() if isinstance(m, quantize.Int8Linear)]
    assert quantised and not any(isinstance(m, Linear) for t in int8.unet.modules()
                                 if t.__class__.__name__ == "SpatialTransformer" for m in t.modules())
    assert isinstance(int8.unet.time_embedding.linear_1, Linear)  # two rows: kept in float32
    kwargs = dict(audio_length_in_s=0.256, num_inference_steps=3, seed=0)
    a, b = full("a bell", **kwargs).audios, int8("a bell", **kwargs).audios
    assert a.shape == b.shape and 0 < rel_err(b, a) < 0.2


def test_int8_needs_a_quantized_engine(tiny_audioldm, monkeypatch):
    monkeypatch.setattr(quantize, "available", lambda: False)
    with pytest.raises(InvalidArgument, match="dtype='int8' runs on the cpu with torch's quantized engine"):
        soundsmith.load(tiny_audioldm, device="cpu", dtype="int8")
