"""Generator profiles: how rooms are furnished and scanned.

- ``basic`` (the demo and the tests): the five room types with their
  mandatory furniture and a few extras, meshed completely (every surface of
  every object), light noise. Easy: a small model gets AP50 ~0.8 in minutes.
- ``basic200`` (the ScanNet200 demo and tests): ``basic`` plus 1-3 objects per room of
  ScanNet200 categories from its common and tail splits (ottoman, basket, bucket, crate),
  written with their tsv rows; for the 20-class label set they are ignored (otherprop).
- ``scannetpp`` (the ScanNet++ demo and tests): ``basic200``'s rooms written in ScanNet++'s
  release layout, with a metadata folder of its layout (``scannetpp_release``).
- ``scannet`` (the learning-quality benchmark): ScanNet-sized, often L-shaped
  rooms holding 10-40 benchmark instances with ScanNet's class mix, tabletop
  clutter, and a simulated scan (``scanning``): holes where no camera looked,
  lost thin parts, dropouts, objects cut by the scan's border; more position
  and colour noise, uneven lighting. Vertex counts 100k-300k (1-2.5 cm).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from scene_pe.synthetic.layout import Layout, make_layout, place_scannet200_extras
from scene_pe.synthetic.layout_scannet import make_scannet_layout

# The generator's version, recorded in every folder it writes (scene_pe/data/provenance.py) and so
# in every checkpoint trained on one: raise it whenever the rooms a seed gives change.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class Profile:
    name: str
    make_layout: Callable[[np.random.Generator], Layout]
    scanned: bool  # simulate what a scan misses (scanning.scan_visible)
    position_noise: float  # m, per-vertex Gaussian noise
    color_noise: float  # per channel
    lighting: float  # amplitude of a smooth brightness variation across the room (0: none)
    num_vertices: tuple[int, int]  # default vertex range of tools/make_synthetic.py
    extra_categories: bool = False  # rooms hold the ScanNet200 extras (catalog.EXTRA_LABEL_ROWS)
    release: str = "scannet"  # file layout: scannet (ScanNet v2's) or scannetpp (ScanNet++'s)


PROFILES = {
    "basic": Profile("basic", make_layout, False, 0.002, 5.0, 0.0, (20000, 120000)),
    "basic200": Profile("basic200", partial(make_layout, extras=place_scannet200_extras), False, 0.002, 5.0, 0.0,
                        (20000, 120000), extra_categories=True),
    "scannetpp": Profile("scannetpp", partial(make_layout, extras=place_scannet200_extras), False, 0.002, 5.0,
                         0.0, (20000, 120000), extra_categories=True, release="scannetpp"),
    "scannet": Profile("scannet", make_scannet_layout, True, 0.004, 9.0, 0.25, (100000, 300000)),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown generator profile {name!r} (one of {', '.join(PROFILES)})") from None
