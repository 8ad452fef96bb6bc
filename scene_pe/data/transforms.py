"""Composable training augmentations, built from config specs.

A transform is a callable ``t(sample, rng) -> sample`` on the in-memory
training sample (``coords``/``colors``/``normals`` float32 (N, 3),
``semantic``/``instance`` int64 (N,)). Rules every transform keeps:

- randomness comes only from ``rng`` (a ``numpy.random.Generator``), so a run
  resumed from a saved generator state replays the same augmentations;
- the caller's dict and arrays are never modified: a shallow copy of the
  dict is returned with new arrays for the keys that changed;
- geometric transforms never touch labels (only ``MaxPoints`` subsets them);
- geometric transforms act about the centre of the scene's bounding box, so
  the scene stays where it is; normals are transformed consistently.

Config form: a list of specs ``{"name": <class name>, **kwargs}`` turned into a
``Compose`` by ``build_transforms``. Recommended ScanNet training pipeline
(also ``SCANNET_TRAIN_SPECS``; values are the common practice of ScanNet
instance-segmentation peers, in metres)::

    - {name: CenterShift, apply_z: true}
    - {name: RandomRotateZ, max_angle: 3.141592653589793}
    - {name: RandomTilt, max_angle: 0.05}
    - {name: RandomScale, low: 0.9, high: 1.1}
    - {name: RandomFlip, axes: [x, y], p: 0.5}
    - {name: ElasticDistortion, params: [[0.2, 0.4], [0.8, 1.6]]}
    - {name: RandomJitter, sigma: 0.005, clip: 0.02}
    - {name: ChromaticAutoContrast, p: 0.2}
    - {name: ChromaticTranslation, p: 0.95, ratio: 0.05}
    - {name: ChromaticJitter, p: 0.95, std: 0.05}

Validation/test pipeline: ``[{name: CenterShift, apply_z: true}]``. Add
``{name: MaxPoints, n: ...}`` at the end only when a scene would not fit in
GPU memory (it crops a contiguous region, see ``MaxPoints``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from scene_pe.data.transforms_base import Sample, Transform, _bad, _bounds, _check_bool, _float
from scene_pe.data.transforms_color import ChromaticAutoContrast, ChromaticJitter, ChromaticTranslation
from scene_pe.data.transforms_elastic import ElasticDistortion


_AXES = {"x": 0, "y": 1, "z": 2}


# ----------------------------------------------------------------- helpers
def _centre(coords: np.ndarray) -> np.ndarray:
    """Centre of the axis-aligned bounding box (float64), zeros for no points."""
    if len(coords) == 0:
        return np.zeros(3)
    lo, hi = _bounds(coords)
    return (lo + hi) / 2.0


def rotation(axis: str, angle: float) -> np.ndarray:
    """Right-handed 3x3 rotation matrix about the named axis ('x', 'y' or 'z')."""
    i, j = [d for d in range(3) if d != _AXES[axis]]
    rot = np.eye(3)
    c, s = math.cos(angle), math.sin(angle)
    rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    if axis == "y":  # (z, x) is the positive order for y
        rot[i, j], rot[j, i] = s, -s
    return rot


def _linear(sample: Sample, mat: np.ndarray) -> Sample:
    """Apply ``mat`` to coords about the bounding-box centre.

    Normals follow the inverse transpose (the rule that keeps them
    perpendicular to the transformed surface) and are renormalised; zero
    normals stay zero.
    """
    out = dict(sample)
    coords = sample["coords"].astype(np.float64)
    centre = _centre(coords)
    out["coords"] = ((coords - centre) @ mat.T + centre).astype(np.float32)
    if "normals" in sample:
        n = sample["normals"].astype(np.float64) @ np.linalg.inv(mat)  # rows: (A^-T n)^T
        norm = np.linalg.norm(n, axis=1, keepdims=True)
        out["normals"] = (n / np.where(norm > 0, norm, 1.0)).astype(np.float32)
    return out


# ----------------------------------------------------------------- geometry
@dataclass
class RandomRotateZ(Transform):
    """Rotate about the vertical axis by an angle uniform in [-max_angle, max_angle].

    Consumes exactly one ``rng.uniform`` draw.
    """

    max_angle: float = math.pi

    def __post_init__(self) -> None:
        _float(self, "max_angle", lo=0.0)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return _linear(sample, rotation("z", rng.uniform(-self.max_angle, self.max_angle)))


@dataclass
class RandomTilt(Transform):
    """Small rotations about x then y, each angle uniform in [-max_angle, max_angle].

    The matrix is ``rotation("y", b) @ rotation("x", a)`` with ``a, b`` the two
    draws of ``rng.uniform(-max_angle, max_angle, size=2)``.
    """

    max_angle: float = 0.05

    def __post_init__(self) -> None:
        _float(self, "max_angle", lo=0.0)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        ax, ay = rng.uniform(-self.max_angle, self.max_angle, size=2)
        return _linear(sample, rotation("y", ay) @ rotation("x", ax))


@dataclass
class RandomScale(Transform):
    """Scale about the bounding-box centre by a factor uniform in [low, high].

    ``anisotropic``: one factor per axis; normals then follow the inverse
    transpose (divide by the factors, renormalise) so they stay perpendicular
    to the scaled surface.
    """

    low: float = 0.9
    high: float = 1.1
    anisotropic: bool = False

    def __post_init__(self) -> None:
        _float(self, "low", lo=0.0, lo_open=True)
        _float(self, "high", lo=self.low)
        _check_bool(self, "anisotropic")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        factor = rng.uniform(self.low, self.high, size=3 if self.anisotropic else 1)
        return _linear(sample, np.diag(np.broadcast_to(factor, 3)))


@dataclass
class RandomFlip(Transform):
    """Mirror each listed axis independently with probability ``p``.

    The mirror plane passes through the bounding-box centre (x -> 2 c_x - x),
    so the box is unchanged; the normals' component along the axis is negated.
    Consumes one ``rng.random()`` per listed axis, in the listed order.
    """

    axes: Sequence[str] = ("x", "y")
    p: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.axes, str) or not all(a in _AXES for a in self.axes):
            raise _bad(self, "axes", f"expected a list of 'x', 'y', 'z', got {self.axes!r}")
        self.axes = tuple(self.axes)
        _float(self, "p", lo=0.0, hi=1.0)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        draws = rng.random(len(self.axes))
        sign = np.ones(3)
        sign[[_AXES[a] for a, u in zip(self.axes, draws) if u < self.p]] = -1.0
        return _linear(sample, np.diag(sign)) if (sign < 0).any() else dict(sample)


@dataclass
class RandomJitter(Transform):
    """Independent Gaussian noise per coordinate, std ``sigma``, clipped to +-``clip``."""

    sigma: float = 0.005
    clip: float = 0.02

    def __post_init__(self) -> None:
        _float(self, "sigma", lo=0.0)
        _float(self, "clip", lo=0.0)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        coords = sample["coords"]
        noise = np.clip(self.sigma * rng.standard_normal(coords.shape), -self.clip, self.clip)
        out = dict(sample)
        out["coords"] = (coords.astype(np.float64) + noise).astype(np.float32)
        return out


@dataclass
class CenterShift(Transform):
    """Translate so the bounding box is centred at x = y = 0 and (``apply_z``) starts at z = 0."""

    apply_z: bool = True

    def __post_init__(self) -> None:
        _check_bool(self, "apply_z")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        out = dict(sample)
        coords = sample["coords"].astype(np.float64)
        if len(coords) == 0:
            return out
        shift = _centre(coords)
        shift[2] = coords[:, 2].min() if self.apply_z else 0.0
        out["coords"] = (coords - shift).astype(np.float32)
        return out


@dataclass
class MaxPoints(Transform):
    """Keep at most ``n`` points when a scene is larger.

    ``mode="crop"`` (default): the ``n`` points nearest in x/y to a random
    seed point, i.e. a vertical cylinder from floor to ceiling, so objects
    are never sliced horizontally and instance masks stay contiguous (only
    objects on the cylinder's rim are cut). ``mode="random"``: a uniform
    random subset (thins every instance instead). Every array whose first
    dimension is N is subset, in the original order; instance ids are then
    renumbered 0..K'-1 in order of their old ids (-1 kept), since cropped
    instances may vanish.
    """

    n: int
    mode: str = "crop"

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise _bad(self, "n", f"expected a positive integer, got {self.n!r}")
        if self.mode not in ("crop", "random"):
            raise _bad(self, "mode", f"expected 'crop' or 'random', got {self.mode!r}")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        coords = sample["coords"]
        num = len(coords)
        out = dict(sample)
        if num <= self.n:
            return out
        if self.mode == "crop":
            seed = coords[rng.integers(num), :2].astype(np.float64)
            dist2 = np.sum((coords[:, :2].astype(np.float64) - seed) ** 2, axis=1)
            keep = np.sort(np.argpartition(dist2, self.n - 1)[: self.n])
        else:
            keep = np.sort(rng.choice(num, size=self.n, replace=False))
        for key, value in sample.items():
            if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == num:
                out[key] = value[keep]
        if "instance" in out:
            inst = out["instance"]
            fg = inst >= 0
            ids = inst.copy()
            ids[fg] = np.unique(inst[fg], return_inverse=True)[1]
            out["instance"] = ids
        return out


# ----------------------------------------------------------------- composition
class Compose(Transform):
    """Apply transforms in order, passing the same ``rng`` to each."""

    def __init__(self, transforms: Iterable[Transform]):
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        out = dict(sample)
        for t in self.transforms:
            out = t(out, rng)
        return out

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


TRANSFORMS: dict[str, type[Transform]] = {
    cls.__name__: cls
    for cls in (RandomRotateZ, RandomTilt, RandomScale, RandomFlip, ElasticDistortion,
                RandomJitter, CenterShift, ChromaticAutoContrast, ChromaticTranslation,
                ChromaticJitter, MaxPoints)
}

SCANNET_TRAIN_SPECS: list[dict[str, Any]] = [
    {"name": "CenterShift", "apply_z": True},
    {"name": "RandomRotateZ", "max_angle": math.pi},
    {"name": "RandomTilt", "max_angle": 0.05},
    {"name": "RandomScale", "low": 0.9, "high": 1.1},
    {"name": "RandomFlip", "axes": ["x", "y"], "p": 0.5},
    {"name": "ElasticDistortion", "params": [[0.2, 0.4], [0.8, 1.6]]},
    {"name": "RandomJitter", "sigma": 0.005, "clip": 0.02},
    {"name": "ChromaticAutoContrast", "p": 0.2},
    {"name": "ChromaticTranslation", "p": 0.95, "ratio": 0.05},
    {"name": "ChromaticJitter", "p": 0.95, "std": 0.05},
]


def build_transform(spec: dict[str, Any]) -> Transform:
    """One transform from ``{"name": ..., **kwargs}``; ValueError names the bad key."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"transform spec must be a mapping with a 'name' key, got {spec!r}")
    name = spec["name"]
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; valid names: {', '.join(TRANSFORMS)}")
    cls = TRANSFORMS[name]
    fields = dataclasses.fields(cls)
    valid = [f.name for f in fields]
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    for key in kwargs:
        if key not in valid:
            raise ValueError(f"transform {name}: unknown argument {key!r}; "
                             f"valid arguments: {', '.join(valid)}")
    for f in fields:
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in kwargs:
            raise ValueError(f"transform {name}: missing required argument {f.name!r}")
    return cls(**kwargs)


def build_transforms(specs: Iterable[dict[str, Any]] | None) -> Compose:
    """``Compose`` of the specs in order (None or [] gives the identity)."""
    return Compose(build_transform(s) for s in (specs or []))
