"""3×3 convolutions by Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray 2016, arXiv:1509.09308).

Each 2×2 block of outputs comes from a 4×4 block of input: transformed (V = Bᵀ d B), multiplied per position by
the transformed kernel (U = G g Gᵀ, one (tiles, C_in) × (C_in, C_out) product for each of the 16 positions) and
transformed back (Y = Aᵀ M A): 16 channel products per 4 outputs where the direct form spends 36, 2.25× fewer. The
transforms are small additions; they run as a strided 3-D convolution over the (H, W, C) memory of a channels-last
tensor (one input channel, 16 outputs) and as its transpose, so no intermediate is reordered. The matrices are the
paper's (§4.1, points 0, ±1): exact in binary, so the result equals the direct convolution up to float rounding.
"""

import torch
import torch.nn.functional as F

B_T = torch.tensor([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=torch.float64)
G = torch.tensor([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=torch.float64)
A_T = torch.tensor([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=torch.float64)
CENTRE = 5  # position (1, 1): Aᵀ's column 1 is all ones, so a bias added there reaches all four outputs once


def winograd_weight(weight: torch.Tensor) -> torch.Tensor:
    """A 3×3 conv weight (C_out, C_in, 3, 3) → U (16, C_in, C_out), U[4a + b] = (G g Gᵀ)[a, b]."""
    u = torch.einsum("au,ocuv,bv->abco", G, weight.detach().double(), G)
    return u.reshape(16, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


def _transforms(dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(input transform (16, 1, 4, 4, 1), output transform (16, 1, 2, 2, 1)) as 3-D convolution weights."""
    v = torch.einsum("au,bv->abuv", B_T, B_T).reshape(16, 1, 4, 4, 1)
    y = torch.einsum("ia,jb->abij", A_T, A_T).reshape(16, 1, 2, 2, 1)
    return v.to(device, dtype), y.to(device, dtype)


def applies(x: torch.Tensor) -> bool:
    """Whether winograd_conv2d takes x: (B, C, H, W) channels-last with H and W even."""
    return (x.dim() == 4 and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0
            and x.is_contiguous(memory_format=torch.channels_last))


def winograd_conv2d(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv2d(x, weight, bias, padding=1) for a 3×3 weight given as u = winograd_weight(weight): x (B, C_in, H, W)
    channels-last, H and W even → (B, C_out, H, W) channels-last."""
    batch, c_in, h, w = x.shape
    c_out = u.shape[-1]
    to_v, from_m = _transforms(x.dtype, x.device)
    volume = x.permute(0, 2, 3, 1).unsqueeze(1)  # (B, 1, H, W, C): the same memory
    v = F.conv3d(volume, to_v, stride=(2, 2, 1), padding=(1, 1, 0))  # (B, 16, H/2, W/2, C)
    tiles = (h // 2) * (w // 2)
    m = torch.matmul(v.view(batch, 16, tiles, c_in), u)  # (B, 16, tiles, C_out)
    if bias is not None:
        m[:, CENTRE] += bias
    y = F.conv_transpose3d(m.view(batch, 16, h // 2, w // 2, c_out), from_m, stride=(2, 2, 1))  # (B, 1, H, W, C_out)
    return y.squeeze(1).permute(0, 3, 1, 2)
