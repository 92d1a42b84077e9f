"""The third implementation bench.py can run (--openvino): diffusers' pipeline with its UNet, VAE decoder and vocoder
converted by OpenVINO (`openvino.convert_model` of the same torch modules, compiled for the CPU), as the
openvino_notebooks "Sound Generation with AudioLDM2 and OpenVINO" notebook does. The text encoders stay in torch
(the same in both: the text stage is not compared). Shapes are static: the networks are converted at the benchmark's
shapes, on the same folder and latents as the other two implementations.

Precision: OpenVINO's CPU plugin computes in bfloat16 by default on CPUs with bfloat16 instructions; float32 runs
set INFERENCE_PRECISION_HINT=f32, bfloat16 runs bf16.
"""

from pathlib import Path
from types import SimpleNamespace


def openvino(folder: Path, dtype, seconds: float, threads: int):
    import openvino as ov
    import torch
    from torch import nn

    from worker import TIMESTEP, Impl, latent_shape, reference

    impl: Impl = reference(folder, torch.float32, seconds)
    pipe = impl.pipe
    config = {"INFERENCE_PRECISION_HINT": "f32" if dtype == torch.float32 else "bf16",
              "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    core = ov.Core()
    shape = latent_shape(folder, seconds)
    cond = impl.encode()
    names = [k for k, v in cond.items() if v is not None]
    nones = {k: None for k, v in cond.items() if v is None}  # passed as None (AudioLDM's encoder_hidden_states)

    class UNet(nn.Module):
        def __init__(self, unet):
            super().__init__()
            self.unet = unet

        def forward(self, sample, timestep, *tensors):
            return self.unet(sample, timestep, **nones, **dict(zip(names, tensors)), return_dict=False)[0]

    class Decoder(nn.Module):
        def __init__(self, vae):
            super().__init__()
            self.vae = vae

        def forward(self, z):
            return self.vae.decode(z).sample

    def compiled(module, *example):
        with torch.no_grad():
            model = ov.convert_model(module.eval(), example_input=example)
        return core.compile_model(model, "CPU", config)

    x = torch.randn(2, *shape[1:])
    z = torch.randn(shape)
    ov_unet = compiled(UNet(pipe.unet), x, torch.tensor(TIMESTEP), *[cond[n] for n in names])
    with torch.no_grad():
        mel = pipe.vae.decode(z).sample
    ov_vae = compiled(Decoder(pipe.vae), z)
    ov_vocoder = compiled(pipe.vocoder, mel.squeeze(1))

    def run(model, *inputs):
        return torch.from_numpy(model([t.detach().numpy() if torch.is_tensor(t) else t for t in inputs])[0].copy())

    def unet_forward(sample, timestep, *args, return_dict=True, **kwargs):
        out = run(ov_unet, sample.float(), torch.as_tensor(timestep).reshape(()).long(), *[kwargs[n] for n in names])
        return (out,) if not return_dict else SimpleNamespace(sample=out)

    pipe.unet.forward = unet_forward
    pipe.vae.decode = lambda latents, *a, **k: SimpleNamespace(sample=run(ov_vae, latents.float()))
    pipe.vocoder.forward = lambda spectrogram: run(ov_vocoder, spectrogram.float())
    impl.unet = lambda x, t, cond: pipe.unet(x, t, **cond, return_dict=False)[0]
    return impl
