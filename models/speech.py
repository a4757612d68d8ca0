"""Spoken keywords synthesised offline with espeak-ng: the data of the keyword-spotting task `kws_yes`.

'yes' against nine other command words (no, up, down, left, right, on, off, stop, go), half and half.
Each clip is one word spoken by espeak-ng in one of 8 English accents with one of 16 voice variants, at
130 to 210 words per minute and pitch 20 to 80, scaled by -6 to +6 dB, placed at a random offset in a
1 s window and mixed with white noise at 5 to 25 dB SNR. A clip becomes 16 frames of 62.5 ms, each the
log energies of 13 mel bands from 100 Hz to 7 kHz (averaged over 23 ms windows every 11.6 ms), scaled
to [0, 1] between the training split's 1st and 99th percentiles of each band and clipped, as every
task's inputs are (they become currents).

The arrays live in `models/data/kws_yes.npz` (inputs stored as bytes, 1/255 steps), so training, the
compiler and the tests need no synthesiser. `python -m models.speech` writes the file again from the
fixed seeds (with Debian's espeak-ng, which `apt-get install espeak-ng` provides).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from compiler.foundation.data import package_path

DATA = package_path("models", "data") / "kws_yes.npz"
KEYWORD = "yes"
OTHERS = ("no", "up", "down", "left", "right", "on", "off", "stop", "go")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt3",
    "croak",
)
RATE = 22050  # Hz, espeak-ng's output
FRAMES, BANDS = 16, 13
WINDOW, HOP = 512, 256  # samples of the short-time spectra averaged into a frame
SPLITS = {"train": (4000, 401), "val": (600, 402), "test": (600, 403)}  # clips, seed


def synthesise(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """One word from espeak-ng as float samples at RATE, trimmed to where it is audible (its WAV on stdout
    has no valid length field)."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
        capture_output=True,
        check=True,
    ).stdout
    start = wav.index(b"data") + 8
    samples = np.frombuffer(wav[start : start + (len(wav) - start) // 2 * 2], "<i2").astype(np.float64) / 32768.0
    loud = np.flatnonzero(np.abs(samples) > 0.01 * np.abs(samples).max())
    return samples[loud[0] : loud[-1] + 1]  # without the silence espeak-ng leaves around the word


def mel_filters() -> np.ndarray:
    """[BANDS, WINDOW // 2 + 1] triangular filters equally spaced on the mel scale, 100 Hz to 7 kHz."""
    mel = np.linspace(_mel(100.0), _mel(7000.0), BANDS + 2)
    edges = 700.0 * (10 ** (mel / 2595.0) - 1.0)
    freqs = np.fft.rfftfreq(WINDOW, 1.0 / RATE)
    rise = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    fall = (edges[2:, None] - freqs[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    return np.clip(np.minimum(rise, fall), 0.0, None)


def _mel(hz: float) -> float:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def log_mel(clip: np.ndarray) -> np.ndarray:
    """[FRAMES, BANDS] log mel energies of a 1 s clip."""
    starts = np.arange(0, len(clip) - WINDOW + 1, HOP)
    spectra = np.abs(np.fft.rfft(clip[starts[:, None] + np.arange(WINDOW)] * np.hanning(WINDOW), axis=1)) ** 2
    energies = spectra @ mel_filters().T
    frame_of = np.minimum((starts + WINDOW // 2) * FRAMES // len(clip), FRAMES - 1)
    pooled = np.stack([energies[frame_of == f].mean(axis=0) for f in range(FRAMES)])
    return np.log(pooled + 1e-10)


def clips(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n clips' log mel features [n, FRAMES, BANDS] and labels (1: the keyword), from `seed`."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int32)
    features = np.empty((n, FRAMES, BANDS))
    for i, label in enumerate(labels):
        word = KEYWORD if label else OTHERS[rng.integers(len(OTHERS))]
        voice = f"{ACCENTS[rng.integers(len(ACCENTS))]}+{VARIANTS[rng.integers(len(VARIANTS))]}"
        speech = synthesise(word, voice, int(rng.integers(130, 211)), int(rng.integers(20, 81)))
        speech = speech[: RATE - 1] * 10 ** (rng.uniform(-6, 6) / 20)
        clip = np.zeros(RATE)
        offset = rng.integers(0, RATE - len(speech) + 1)
        clip[offset : offset + len(speech)] = speech
        power = np.mean(speech**2)
        clip += rng.standard_normal(RATE) * np.sqrt(power / 10 ** (rng.uniform(5, 25) / 10))
        features[i] = log_mel(clip)
    return features, labels


def write(path: Path = DATA) -> Path:
    """Synthesise every split and store it scaled to bytes (inputs in [0, 1] at 1/255 steps)."""
    made = {name: clips(n, seed) for name, (n, seed) in SPLITS.items()}
    low, high = np.percentile(made["train"][0], [1, 99], axis=(0, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, (features, labels) in made.items():
        scaled = np.clip((features - low) / (high - low), 0.0, 1.0)
        arrays[f"x_{name}"] = np.round(scaled * 255).astype(np.uint8)
        arrays[f"y_{name}"] = labels.astype(np.uint8)
    np.savez_compressed(path, **arrays)
    return path


def load(path: Path = DATA) -> dict:
    """The stored splits: name -> (x [n, FRAMES, BANDS] float32 in [0, 1], y int32)."""
    with np.load(path) as data:
        return {
            name: (data[f"x_{name}"].astype(np.float32) / 255.0, data[f"y_{name}"].astype(np.int32)) for name in SPLITS
        }


if __name__ == "__main__":
    print(write())
