"""Exact convolutions that do less arithmetic than the direct form: the vocoder's 1-D convolutions by DFT, its
transposed convolutions as polyphase convolutions, and a nearest-neighbour ×2 upsampling fused into the 3×3
convolution that follows it (VAE decoder, UNet).

Each form computes the same sums as the direct convolution, reassociated; outputs agree with it to float rounding
(~1e-6 relative in float32; tests/test_kernels.py checks every form against the direct one). Which form runs is
decided by measurement on the machine (runtime.fastest); the direct form is always a candidate.

Activations are time-major: (B, L, C), which is the memory of the vocoder's (B, C, 1, L) channels-last tensors.

DFT convolution (overlap-save, Stockham 1966): a kernel of k taps slides over tiles of n samples that overlap by
k − 1; each tile is taken to n real frequency components by a small DFT matrix, multiplied by the kernel's own
transform (the channel mixing: one (tiles, C_in) × (C_in, C_out) product per component), and brought back, keeping
the n − k + 1 outputs that did not wrap around. A complex product (x_r + i x_i)(h_r + i h_i) takes three real
products (x_r h_r, x_i h_i, (x_r + x_i)(h_r + h_i); Gauss), and the two real components (0 and n/2) one each, so a
tile costs 3n/2 − 1 channel products where the direct form spends k(n − k + 1): 5.1× fewer for k = 11, n = 32.
The forward and inverse DFTs are products with (3n/2 − 1, n) and (n − k + 1, 3n/2 − 1) matrices that also perform
Gauss's recombination. A dilated kernel (dilation d) is an undilated one on each of the d interleaved phases of the
signal, so dilation costs nothing extra.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# ------------------------------------------------------------------------------------------ helpers


def prepared(module: torch.nn.Module, name: str, build):
    """build(module) cached on the module under `name` (outside its state dict), rebuilt when its weight changes
    (storage, in-place version, dtype or device)."""
    weight = module.weight
    stamp = (weight.data_ptr(), weight._version, weight.dtype, weight.device)
    cache = module.__dict__.setdefault("_prepared", {})
    if name not in cache or cache[name][0] != stamp:
        cache[name] = (stamp, build(module))
    return cache[name][1]


def fast_forms_apply(module: torch.nn.Module, x: torch.Tensor) -> bool:
    """Whether a form other than the direct one may run: inference on the CPU (the prepared weights are detached, so
    no gradients), outside torch.compile's tracing."""
    return (x.device.type == "cpu" and not torch.compiler.is_compiling()
            and not (torch.is_grad_enabled() and (x.requires_grad or module.weight.requires_grad)))


# ------------------------------------------------------------------------------------------ DFT convolution


@dataclass(frozen=True)
class DFTConv:
    """A Conv1d prepared for overlap-save DFT convolution with tiles of n samples.

    forward (S, n), inverse (n − k + 1, S), weight (S, C_in, C_out), bias (C_out,) or None, S = 3n/2 − 1."""

    n: int
    kernel: int
    dilation: int
    padding: int
    forward: torch.Tensor
    inverse: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None

    @property
    def step(self) -> int:
        """Outputs per tile (per phase)."""
        return self.n - self.kernel + 1


def dft_slices(n: int) -> int:
    """Channel products per tile of n samples: two real components and three products per complex one."""
    return 3 * n // 2 - 1


def dft_speedup(kernel: int, n: int) -> float:
    """Channel products of the direct form / of the DFT form, per output sample (ignores the DFTs themselves)."""
    return kernel * (n - kernel + 1) / dft_slices(n)


def _dft_matrices(n: int, kernel: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(forward (S, n), inverse (n − k + 1, S)) in float64. Rows of forward: the real parts of components 0 and
    n/2, then for q = 1 … n/2 − 1 the real parts, the imaginary parts, and their sums (Gauss's third product)."""
    if n % 2 or n < kernel + 1:
        raise ValueError(f"DFT tile n={n}: must be even and longer than the kernel ({kernel})")
    half, q = n // 2, torch.arange(1, n // 2, dtype=torch.float64)
    j = torch.arange(n, dtype=torch.float64)
    theta = 2 * math.pi * q[:, None] * j[None, :] / n  # (half − 1, n)
    cos, sin = torch.cos(theta), torch.sin(theta)
    forward = torch.cat([torch.ones(1, n, dtype=torch.float64), torch.cos(math.pi * j)[None], cos, -sin, cos - sin])
    # inverse at the outputs that did not wrap around, m = k − 1 … n − 1; with Y = H·X per component,
    # y_m = (1/n) Σ_q c_q (Re Y_q cos θ − Im Y_q sin θ), c = 1 at 0 and n/2, else 2, and Re Y = P1 − P2,
    # Im Y = P3 − P1 − P2 for the products P1 = X_r H_r, P2 = X_i H_i, P3 = (X_r + X_i)(H_r + H_i)
    m = torch.arange(kernel - 1, n, dtype=torch.float64)
    theta = 2 * math.pi * q[None, :] * m[:, None] / n  # (step, half − 1)
    cos, sin = torch.cos(theta), torch.sin(theta)
    inverse = torch.cat([torch.ones(len(m), 1, dtype=torch.float64), torch.cos(math.pi * m)[:, None],
                         2 * (cos + sin), 2 * (sin - cos), -2 * sin], dim=1) / n
    assert forward.shape[0] == inverse.shape[1] == dft_slices(n) and half >= 1
    return forward, inverse


def dft_conv_plan(weight: torch.Tensor, bias: torch.Tensor | None, dilation: int, padding: int, n: int) -> DFTConv:
    """Prepare a Conv1d's weight (C_out, C_in, k) for dft_conv1d with tiles of n samples (even, > k)."""
    c_out, c_in, kernel = weight.shape
    forward, inverse = _dft_matrices(n, kernel)
    # the layer correlates (y_t = Σ_j w_j x_{t+j}); a circular convolution with the reversed kernel does that
    spectrum = torch.fft.rfft(weight.detach().double().flip(-1), n=n)  # (C_out, C_in, n/2 + 1)
    real, imag = spectrum.real[..., 1:-1], spectrum.imag[..., 1:-1]
    slices = torch.cat([spectrum.real[..., :1], spectrum.real[..., -1:], real, imag, real + imag], dim=-1)
    dtype, device = weight.dtype, weight.device
    return DFTConv(n, kernel, dilation, padding, forward.to(device, dtype), inverse.to(device, dtype),
                   slices.permute(2, 1, 0).to(device, dtype).contiguous(),
                   None if bias is None else bias.detach().to(device, dtype))


def dft_conv1d(x: torch.Tensor, plan: DFTConv) -> torch.Tensor:
    """Conv1d by overlap-save DFT: x (B, L, C_in) time-major → (B, L_out, C_out), L_out = L + 2·padding −
    dilation·(k − 1), equal to the direct convolution up to float rounding."""
    batch, length, channels = x.shape
    k, d, p, step = plan.kernel, plan.dilation, plan.padding, plan.step
    out_len = length + 2 * p - d * (k - 1)
    phase_len = -(-out_len // d)  # outputs per phase
    tiles = -(-phase_len // step)
    slots = tiles + -(-(k - 1) // step)  # tile slots per sequence: the last reads the next sequence's start
    sequences = batch * d
    buffer = x.new_zeros(sequences * slots * step + plan.n, channels)
    if d == 1:
        buffer[:sequences * slots * step].view(batch, slots * step, channels)[:, p:p + length] = x
    else:  # phase r of sequence b holds x_padded[b, r::d]
        padded = x.new_zeros(batch, slots * step * d, channels)
        padded[:, p:p + length] = x
        buffer[:sequences * slots * step].view(batch, d, slots * step, channels).copy_(
            padded.view(batch, slots * step, d, channels).transpose(1, 2))
        del padded
    count = sequences * slots
    frames = buffer.as_strided((count, plan.n, channels), (step * channels, channels, 1))
    spectra = torch.bmm(plan.forward.expand(count, -1, -1), frames)  # (count, S, C_in)
    del buffer, frames
    products = torch.bmm(spectra.transpose(0, 1), plan.weight)  # (S, count, C_out)
    del spectra
    inverse = plan.inverse.expand(count, -1, -1)
    if plan.bias is None:
        y = torch.bmm(inverse, products.transpose(0, 1))
    else:
        y = torch.baddbmm(plan.bias.expand(count, step, -1), inverse, products.transpose(0, 1))
    c_out = y.shape[-1]
    y = y.view(batch, d, slots * step, c_out)[:, :, :phase_len]
    if d == 1:
        return y[:, 0, :out_len].contiguous()  # a view when B = 1
    return y.transpose(1, 2).reshape(batch, phase_len * d, c_out)[:, :out_len]


# ------------------------------------------------------------------------------- polyphase transposed conv


def polyphase_weight(weight: torch.Tensor, stride: int) -> torch.Tensor:
    """A ConvTranspose1d weight (C_in, C_out, K) → the Conv1d weight (stride·C_out, C_in, ⌈K/stride⌉) whose output
    channel r·C_out + o is output phase r: tap j = r + stride·a of the transposed kernel sits at index A − 1 − a."""
    c_in, c_out, kernel = weight.shape
    taps = -(-kernel // stride)
    out = weight.new_zeros(stride, c_out, c_in, taps)
    for r in range(stride):
        for a in range(taps):
            j = r + stride * a
            if j < kernel:
                out[r, :, :, taps - 1 - a] = weight[:, :, j].t()
    return out.reshape(stride * c_out, c_in, taps)


def conv_transpose1d_polyphase(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int,
                               padding: int, kernel: int) -> torch.Tensor:
    """ConvTranspose1d without the zeros it would insert: x (B, C_in, 1, L) channels-last, weight from
    polyphase_weight → (B, C_out, 1, L_out) channels-last, L_out = (L − 1)·stride − 2·padding + K. Output sample t
    is phase (t + padding) mod stride of position (t + padding) div stride: one ordinary convolution with
    stride·C_out channels computes every phase, and the phases interleave by a reshape."""
    batch, _, _, length = x.shape
    taps = weight.shape[-1]
    c_out = weight.shape[0] // stride
    out_len = (length - 1) * stride - 2 * padding + kernel
    phases = F.conv2d(x, weight.unsqueeze(2), None if bias is None else bias.repeat(stride), padding=(0, taps - 1))
    # phases (B, stride·C_out, 1, L + taps − 1) channels-last = (B, L + taps − 1, stride, C_out) in memory
    y = phases.permute(0, 2, 3, 1).reshape(batch, -1, c_out)[:, padding:padding + out_len]
    return y.view(batch, 1, out_len, c_out).permute(0, 3, 1, 2) if batch == 1 else \
        y.contiguous().view(batch, 1, out_len, c_out).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------- nearest ×2 upsampling + 3×3 conv


def upsample_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """A 3×3 conv weight (C_out, C_in, 3, 3) applied after nearest-neighbour ×2 upsampling → the 2×2 weight
    (4·C_out, C_in, 2, 2) of the same map on the low-resolution input, output channel (2a + b)·C_out + o for output
    phase (a, b). Along each axis, phase 0 sees input rows (i − 1, i) with kernel rows (w0, w1 + w2) and phase 1
    sees rows (i, i + 1) with (w0 + w1, w2)."""
    w = weight.detach().double()
    rows = [torch.stack([w[:, :, 0], w[:, :, 1] + w[:, :, 2]], 2), torch.stack([w[:, :, 0] + w[:, :, 1], w[:, :, 2]], 2)]
    phases = []
    for a in range(2):
        r = rows[a]  # (C_out, C_in, 2, 3)
        cols = [torch.stack([r[..., 0], r[..., 1] + r[..., 2]], -1), torch.stack([r[..., 0] + r[..., 1], r[..., 2]], -1)]
        phases += cols
    return torch.cat(phases, 0).to(weight.dtype)


def upsample_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv3×3(nearest_upsample×2(x)) with padding 1, computed on x itself: x (B, C_in, H, W) → (B, C_out, 2H, 2W),
    weight from upsample_conv_weight. 4/9 of the direct form's products (plus a row and a column of border)."""
    batch, _, h, w = x.shape
    c_out = weight.shape[0] // 4
    z = F.conv2d(x, weight, None if bias is None else bias.repeat(4), padding=1)  # (B, 4·C_out, H + 1, W + 1)
    channels_last = z.is_contiguous(memory_format=torch.channels_last) and not z.is_contiguous()
    out = torch.empty(batch, c_out, 2 * h, 2 * w, dtype=z.dtype, device=z.device,
                      memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    # out[:, o, 2i + a, 2j + b] = z[:, (2a + b)·C_out + o, i + a, j + b]: one strided view of z holds every phase
    # (the phase offsets folded into the strides of a and b), so a single copy interleaves them
    s_b, s_c, s_h, s_w = z.stride()
    phases = z.as_strided((batch, c_out, h, 2, w, 2), (s_b, s_c, s_h, 2 * c_out * s_c + s_h, s_w, c_out * s_c + s_w))
    out.unflatten(2, (h, 2)).unflatten(4, (w, 2)).copy_(phases)
    return out
