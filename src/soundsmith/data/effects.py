"""Sound effects: real recordings from the label table arranged in a clip, and procedural sounds made with numpy.

Waveforms are (samples,) float32 at the clip's sample rate; times in seconds; `rng` is a numpy Generator.
"""

from functools import lru_cache

import numpy as np
import soundfile
import torch

from ..audio import resample
from .sources import resolve

SILENCE_DB = -45.0  # trim a recording's leading and trailing samples quieter than this, relative to its peak


@lru_cache(maxsize=512)
def load_effect(ref: str, sample_rate: int) -> np.ndarray:
    """A recording by reference ('scratch:Animal/Dog1.wav') → mono at sample_rate, silence trimmed, peak 1."""
    data, rate = soundfile.read(resolve(ref), dtype="float32", always_2d=True)
    x = resample(torch.from_numpy(data.mean(axis=1)), rate, sample_rate).numpy()
    loud = np.flatnonzero(np.abs(x) > np.abs(x).max() * 10 ** (SILENCE_DB / 20))
    x = x[loud[0]: loud[-1] + 1] if len(loud) else x
    return (x / max(np.abs(x).max(), 1e-6)).astype(np.float32)


def place(clip: np.ndarray, sound: np.ndarray, start: int, gain: float = 1.0) -> None:
    """Add sound·gain into clip from sample `start`, cut at the clip's end (in place)."""
    if start >= len(clip):
        return
    n = min(len(sound), len(clip) - start)
    clip[start:start + n] += gain * sound[:n]


def fit(sound: np.ndarray, length: int, rng) -> np.ndarray:
    """A random window of `length` samples of a longer sound, with 50 ms fades; shorter sounds are returned as
    they are."""
    if len(sound) <= length:
        return sound
    start = int(rng.integers(0, len(sound) - length + 1))
    out = sound[start:start + length].copy()
    fade = min(length // 4, len(out) // 20 + 1)
    out[:fade] *= np.linspace(0, 1, fade)
    out[-fade:] *= np.linspace(1, 0, fade)
    return out


def arrange(rng, sounds: list[np.ndarray], length: int, sample_rate: int, gap: tuple = (0.2, 1.2)) -> np.ndarray:
    """The sounds one after another from a random offset, separated by random gaps (seconds); stops at length."""
    clip = np.zeros(length, np.float32)
    t = int(rng.uniform(0.0, 0.6) * sample_rate)
    for sound in sounds:
        if t >= length:
            break
        place(clip, fit(sound, length - t, rng), t)
        t += len(sound) + int(rng.uniform(*gap) * sample_rate)
    return clip


def distant(x: np.ndarray, sample_rate: int, rng) -> np.ndarray:
    """A farther-away version: low-passed at 1.5–3 kHz, a short echo tail, and 12 dB quieter."""
    cutoff = rng.uniform(1500, 3000)
    y = bandpass(x, sample_rate, 0.0, cutoff)
    tail = np.exp(-np.arange(int(0.3 * sample_rate)) / (0.08 * sample_rate)) * rng.standard_normal(int(0.3 * sample_rate))
    y = y + 0.15 * np.convolve(y, tail / np.sqrt((tail**2).sum()), mode="full")[: len(y)]
    return (0.25 * y / max(np.abs(y).max(), 1e-6)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ procedural


def bandpass(x: np.ndarray, sample_rate: int, low: float, high: float) -> np.ndarray:
    """Zero-phase FFT band-pass between low and high Hz with raised-cosine edges a quarter octave wide."""
    spectrum = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / sample_rate)
    gain = np.ones_like(f)
    if low > 0:
        gain *= np.clip((np.log2(np.maximum(f, 1e-3) / low) + 0.25) / 0.5, 0, 1)
    if high < sample_rate / 2:
        gain *= np.clip((0.25 - np.log2(np.maximum(f, 1e-3) / high)) / 0.5, 0, 1)
    return np.fft.irfft(spectrum * gain, len(x)).astype(np.float32)


def coloured_noise(rng, n: int, exponent: float) -> np.ndarray:
    """Noise with power ∝ 1/f^exponent (0 white, 1 pink, 2 brown), peak 1."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    spectrum[1:] /= f[1:] ** (exponent / 2)
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n)
    return (x / np.abs(x).max()).astype(np.float32)


def slow_wobble(rng, n: int, sample_rate: int, rate: float, depth: float) -> np.ndarray:
    """A smooth random envelope around 1 (sum of three sinusoids near `rate` Hz), in [1 - depth, 1 + depth]."""
    t = np.arange(n) / sample_rate
    w = sum(np.sin(2 * np.pi * rate * rng.uniform(0.5, 1.5) * t + rng.uniform(0, 2 * np.pi)) for _ in range(3)) / 3
    return (1 + depth * w).astype(np.float32)


def rain(rng, n: int, sample_rate: int, heavy: bool) -> np.ndarray:
    """A hiss bed plus droplet clicks (short decaying noise bursts, Poisson in time)."""
    bed = bandpass(coloured_noise(rng, n, 0.5), sample_rate, 400, 7000) * (0.5 if heavy else 0.25)
    drops = np.zeros(n, np.float32)
    rate = rng.uniform(600, 1500) if heavy else rng.uniform(80, 300)  # drops a second
    times = rng.integers(0, n, int(rate * n / sample_rate))
    drops[times] = rng.uniform(0.2, 1.0, len(times)) * rng.choice((-1, 1), len(times))
    kernel = rng.standard_normal(int(0.004 * sample_rate)) * np.exp(-np.arange(int(0.004 * sample_rate))
                                                                     / (0.0008 * sample_rate))
    drops = bandpass(np.convolve(drops, kernel, mode="same").astype(np.float32), sample_rate, 1000, 9000)
    return bed * slow_wobble(rng, n, sample_rate, 0.3, 0.2) + 0.6 * drops / max(np.abs(drops).max(), 1e-6)


def stream(rng, n: int, sample_rate: int) -> np.ndarray:
    """Band-passed noise with a fast wobble, plus bubbling chirps (short rising sines, 300–1500 Hz)."""
    x = bandpass(coloured_noise(rng, n, 1.0), sample_rate, 250, 4000) * slow_wobble(rng, n, sample_rate, 4.0, 0.5)
    for _ in range(int(rng.uniform(8, 20) * n / sample_rate)):
        m = int(rng.uniform(0.01, 0.04) * sample_rate)
        f0 = rng.uniform(300, 1500)
        t = np.arange(m) / sample_rate
        chirp = np.sin(2 * np.pi * (f0 * t + 0.5 * f0 * 8 * t**2)) * np.hanning(m)
        place(x, (0.3 * rng.uniform(0.3, 1) * chirp).astype(np.float32), int(rng.integers(0, n)))
    return x


def waves(rng, n: int, sample_rate: int) -> np.ndarray:
    """Low-passed noise swelling and ebbing every 4–9 seconds."""
    t = np.arange(n) / sample_rate
    period = rng.uniform(4, 9)
    swell = np.maximum(np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)), 0) ** 2 + 0.1
    return (bandpass(coloured_noise(rng, n, 1.0), sample_rate, 60, 3000) * swell).astype(np.float32)


def drips(rng, n: int, sample_rate: int) -> np.ndarray:
    """Single water drops: a falling-pitch 'plink' (sine 700–1800 Hz dropping fast) every 0.3–1 s."""
    x = np.zeros(n, np.float32)
    t0 = rng.uniform(0, 0.5)
    while t0 * sample_rate < n:
        m = int(0.08 * sample_rate)
        t = np.arange(m) / sample_rate
        f = rng.uniform(700, 1800)
        plink = np.sin(2 * np.pi * f * (t + 6 * t**2)) * np.exp(-t / 0.02)
        place(x, plink.astype(np.float32), int(t0 * sample_rate), rng.uniform(0.5, 1))
        t0 += rng.uniform(0.3, 1.0)
    return x


def wind(rng, n: int, sample_rate: int) -> np.ndarray:
    """Noise through a band whose centre drifts slowly: gusts."""
    base = coloured_noise(rng, n, 1.5)
    return bandpass(base, sample_rate, 80, 1500) * slow_wobble(rng, n, sample_rate, 0.25, 0.7)


def thunder(rng, n: int, sample_rate: int) -> np.ndarray:
    """One or two low rumbles: brown noise under a sharp attack and a 1–3 s decay."""
    x = np.zeros(n, np.float32)
    for _ in range(int(rng.integers(1, 3))):
        start = int(rng.uniform(0, 0.6) * n)
        t = np.arange(n - start) / sample_rate
        env = (1 - np.exp(-t / 0.05)) * np.exp(-t / rng.uniform(1, 3))
        x[start:] += bandpass(coloured_noise(rng, n - start, 2.0), sample_rate, 20, 600) * env
    return x


def engine(rng, n: int, sample_rate: int, revving: bool) -> np.ndarray:
    """Firing-rate harmonics (20–45 Hz idle, up to ×3 revving) with cycle-to-cycle jitter, plus rumble."""
    t = np.arange(n) / sample_rate
    f0 = rng.uniform(20, 45)
    if revving:
        revs = np.clip(np.sin(2 * np.pi * t / rng.uniform(1.5, 3.5) - np.pi / 2) * 0.5 + 0.5, 0, 1)
        f0 = f0 * (1 + 2 * revs)
    jitter = 1 + 0.03 * np.cumsum(rng.standard_normal(n)) / np.sqrt(sample_rate)
    phase = 2 * np.pi * np.cumsum(f0 * np.clip(jitter, 0.8, 1.2)) / sample_rate
    x = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k**0.7 for k in range(1, 25))
    x = bandpass(x.astype(np.float32), sample_rate, 25, 4000)
    rumble = bandpass(coloured_noise(rng, n, 1.0), sample_rate, 30, 800)
    x = x / np.abs(x).max() + 0.3 * rumble
    return (x * (1 + 0.3 * np.sin(phase / 2))).astype(np.float32)


def church_bell(rng, n: int, sample_rate: int, count: int) -> np.ndarray:
    """`count` strikes of a bell with a church bell's partials (hum, prime, tierce, quint, nominal …)."""
    fundamental = rng.uniform(150, 500)
    partials = ((0.5, 1.0, 4.0), (1.0, 0.8, 2.5), (1.2, 0.5, 1.8), (1.5, 0.35, 1.4), (2.0, 0.6, 1.2),
                (2.5, 0.25, 0.8), (3.0, 0.2, 0.6), (4.2, 0.12, 0.4), (5.4, 0.08, 0.3))
    m = int(3.0 * sample_rate)
    t = np.arange(m) / sample_rate
    strike = sum(g * np.sin(2 * np.pi * fundamental * r * t + rng.uniform(0, 6.3)) * np.exp(-t / d)
                 for r, g, d in partials if fundamental * r < sample_rate / 2)
    strike = (strike / np.abs(strike).max()).astype(np.float32)
    x = np.zeros(n, np.float32)
    interval = n / max(count, 1) * rng.uniform(0.6, 0.95)
    for k in range(count):
        place(x, strike, int(rng.uniform(0, 0.3) * sample_rate + k * interval))
    return x


def siren(rng, n: int, sample_rate: int) -> np.ndarray:
    """A two-tone or wailing siren: a square-ish wave whose pitch glides between 600 and 1400 Hz."""
    t = np.arange(n) / sample_rate
    period = rng.uniform(1.0, 4.0)
    f = 600 + 800 * (0.5 + 0.5 * np.sin(2 * np.pi * t / period))
    phase = 2 * np.pi * np.cumsum(f) / sample_rate
    return np.tanh(3 * np.sin(phase)).astype(np.float32)


def tone(n: int, sample_rate: int, hz: float) -> np.ndarray:
    t = np.arange(n) / sample_rate
    return (np.sin(2 * np.pi * hz * t) * np.minimum(1, np.minimum(t, t[::-1]) / 0.02)).astype(np.float32)


def beeps(rng, n: int, sample_rate: int, hz: float) -> np.ndarray:
    x = np.zeros(n, np.float32)
    on, off = rng.uniform(0.08, 0.3), rng.uniform(0.08, 0.5)
    start = rng.uniform(0, 0.5)
    while start * sample_rate < n:
        place(x, tone(int(on * sample_rate), sample_rate, hz), int(start * sample_rate))
        start += on + off
    return x


def sweep(n: int, sample_rate: int, low: float, high: float, rising: bool) -> np.ndarray:
    """An exponential sine sweep from low to high Hz (or back) over the whole clip."""
    t = np.arange(n) / sample_rate
    duration = n / sample_rate
    f = low * (high / low) ** (t / duration if rising else 1 - t / duration)
    return (np.sin(2 * np.pi * np.cumsum(f) / sample_rate) * np.minimum(1, np.minimum(t, t[::-1]) / 0.05)
            ).astype(np.float32)


def hum(rng, n: int, sample_rate: int, hz: float) -> np.ndarray:
    t = np.arange(n) / sample_rate
    return sum(np.sin(2 * np.pi * hz * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 8)).astype(np.float32)
