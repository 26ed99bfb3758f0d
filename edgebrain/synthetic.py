"""The built-in example's data: generated 3-axis motion (still / walking / shaking) and the small
spiking network trained on it (``edgebrain/examples/motion_snntorch.nir``, written by snnTorch's
NIR exporter; ``tools/make_example.py`` trains it on this same generator). No recording needed.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

CLASSES = ("still", "walking", "shaking")
RATE_HZ = 50.0
WINDOW = 50  # steps per decision (1 s at 50 Hz)


def example_path() -> str:
    """The built-in example model (a NIR file shipped in the package)."""
    return str(resources.files("edgebrain") / "examples" / "motion_snntorch.nir")


def synthetic_motion(labels, rng, steps=WINDOW) -> np.ndarray:
    """Accelerometer-like signals (steps, 3) per label: still = noise, walking = 1.5–2.5 Hz
    swing, shaking = 5–8 Hz vibration; random amplitudes, phases and axis mixing."""
    out = []
    t = np.arange(steps) / RATE_HZ
    for lab in labels:
        x = 0.08 * rng.standard_normal((steps, 3))
        if lab == 1:
            f = rng.uniform(1.5, 2.5)
            amp = rng.uniform(0.6, 1.2)
            x += amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))[:, None] * rng.uniform(0.3, 1, 3)
        elif lab == 2:
            f = rng.uniform(5.0, 8.0)
            amp = rng.uniform(0.6, 1.2)
            x += amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))[:, None] * rng.uniform(0.3, 1, 3)
        out.append(x)
    return np.concatenate(out).astype(np.float32)
