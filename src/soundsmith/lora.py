"""LoRA adapters (Hu et al. 2021) on the UNet's attention projections (to_q, to_k, to_v, to_out.0), through peft.

An adapter folder holds adapter_config.json (peft's LoraConfig) and adapter_model.safetensors (the low-rank A, B
matrices, named as in the UNet). `scaled(unet, s)` multiplies every LoRA branch by s for a while, as diffusers
does for cross_attention_kwargs={"scale": s}: 0 gives the base model back, 1 the adapter as trained.
"""

from contextlib import contextmanager
from pathlib import Path

import torch

from .errors import CheckpointError

TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
ADAPTER = "default"
WEIGHTS = "adapter_model.safetensors"


def _peft():
    try:
        import peft
    except ImportError:
        raise CheckpointError("LoRA needs peft: pip install 'soundsmith[train]' (or pip install peft)") from None
    return peft


def add_lora(unet: torch.nn.Module, rank: int = 8, alpha: float | None = None):
    """Insert fresh LoRA branches (B = 0, so the output is unchanged) into `unet`; returns the LoraConfig."""
    peft = _peft()
    config = peft.LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=TARGETS, init_lora_weights=True)
    peft.inject_adapter_in_model(config, unet, adapter_name=ADAPTER)
    unet.lora_config = config
    return config


def lora_layers(unet: torch.nn.Module) -> list:
    from peft.tuners.lora import LoraLayer

    return [m for m in unet.modules() if isinstance(m, LoraLayer)]


def save_adapter(unet: torch.nn.Module, folder: Path) -> Path:
    """Write the adapter of `unet` (after add_lora or load_adapter) to `folder`."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = get_peft_model_state_dict(unet, adapter_name=ADAPTER)
    save_file({k: v.detach().cpu().float().contiguous() for k, v in state.items()}, folder / WEIGHTS,
              metadata={"format": "pt"})
    unet.lora_config.save_pretrained(folder)
    return folder


def load_adapter(unet: torch.nn.Module, folder: Path, scale: float = 1.0) -> None:
    """Insert the adapter saved in `folder` into `unet` at `scale` (strict: every LoRA weight must be present)."""
    peft = _peft()
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "adapter_config.json").is_file() or not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"{folder} is not a LoRA adapter (needs adapter_config.json and {WEIGHTS})")
    if lora_layers(unet):
        raise CheckpointError("this UNet already has a LoRA adapter; load the model again to use another")
    config = peft.LoraConfig.from_pretrained(str(folder))
    try:
        peft.inject_adapter_in_model(config, unet, adapter_name=ADAPTER)
    except ValueError as exc:
        raise CheckpointError(f"{folder}: the adapter does not fit this UNet ({exc})") from None
    param = next(unet.parameters())
    state = {k: v.to(param.device, param.dtype) for k, v in load_file(folder / WEIGHTS).items()}
    result = set_peft_model_state_dict(unet, state, adapter_name=ADAPTER)
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    if missing:
        raise CheckpointError(f"{folder}: the adapter does not fit this UNet (missing {missing[:3]})")
    unet.lora_config = config
    for layer in lora_layers(unet):
        layer.to(param.device, param.dtype)
        layer.set_scale(ADAPTER, scale)
    unet.requires_grad_(False)


@contextmanager
def scaled(unet: torch.nn.Module, scale: float | None):
    """Multiply every LoRA branch of `unet` by `scale` inside the block (no-op without adapters or scale None/1)."""
    layers = lora_layers(unet) if scale is not None and scale != 1 and hasattr(unet, "lora_config") else []
    from .aot import SignatureUNet

    if layers and isinstance(unet, SignatureUNet):  # a compiled or converted graph: its weights are fixed
        from .errors import InvalidArgument

        raise InvalidArgument(f"a LoRA scale of {scale} needs the eager UNet: this pipeline runs a compiled or "
                              f"OpenVINO UNet with the adapter at its loaded scale (load it with backend='torch')")
    saved = [dict(layer.scaling) for layer in layers]
    for layer in layers:
        layer.scale_layer(scale)
    try:
        yield
    finally:
        for layer, scaling in zip(layers, saved):
            layer.scaling.update(scaling)
