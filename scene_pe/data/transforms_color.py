"""Colour augmentations (Pointcept-style chromatic transforms); registered in transforms.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scene_pe.data.transforms_base import Sample, Transform, _float, _set_colors

# ----------------------------------------------------------------- colour
class _Colour(Transform):
    """With probability ``p`` (one ``rng.random()`` draw), change colours; clip to [0, 1]."""

    p: float

    def __post_init__(self) -> None:
        _float(self, "p", lo=0.0, hi=1.0)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        out = dict(sample)
        if "colors" not in sample or len(sample["colors"]) == 0 or rng.random() >= self.p:
            return out
        return _set_colors(out, self._apply(sample["colors"].astype(np.float64), rng))

    def _apply(self, colors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


@dataclass
class ChromaticAutoContrast(_Colour):
    """Stretch each channel to [0, 1] and blend with the input.

    ``blend_factor`` (weight of the stretched colours) is drawn uniform in
    [0, 1) when null.
    """

    p: float = 0.2
    blend_factor: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.blend_factor is not None:
            _float(self, "blend_factor", lo=0.0, hi=1.0)

    def _apply(self, colors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lo, hi = colors.min(axis=0), colors.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)  # constant channel: left as it is
        stretched = np.where(hi > lo, (colors - lo) / span, colors)
        blend = rng.random() if self.blend_factor is None else self.blend_factor
        return (1.0 - blend) * colors + blend * stretched


@dataclass
class ChromaticTranslation(_Colour):
    """Add one offset per channel, uniform in [-ratio, ratio]."""

    p: float = 0.95
    ratio: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        _float(self, "ratio", lo=0.0)

    def _apply(self, colors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return colors + rng.uniform(-self.ratio, self.ratio, size=3)


@dataclass
class ChromaticJitter(_Colour):
    """Add Gaussian noise of std ``std`` to every colour value."""

    p: float = 0.95
    std: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        _float(self, "std", lo=0.0)

    def _apply(self, colors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return colors + self.std * rng.standard_normal(colors.shape)


# ----------------------------------------------------------------- point budget
