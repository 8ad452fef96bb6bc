"""ScanNet-like furnishing (``--profile scannet``): bigger, fuller, irregular rooms.

On top of a room type's mandatory groups (``layout.place_mandatory``) the room
is filled until it holds a drawn number (10-40) of benchmark instances. Each
next group is chosen by the class it adds, with probabilities proportional to
ScanNet's annotation counts (the ``count`` column of the label tsv rows in
``catalog``: chairs first, then tables, doors, windows, ...), so the class mix
follows ScanNet's. Rooms are larger than the basic profile's and often
L-shaped; chairs come in rows and around tables, small objects of
non-benchmark classes stand on tables, desks, counters and low cabinets.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from scene_pe.labels.label_set import SCANNET20
from scene_pe.synthetic import objects as obj
from scene_pe.synthetic.catalog import LABEL_ROWS, RAW_TO_NYU40
from scene_pe.synthetic.layout import ROOM_TYPES, Layout, Placer, finish_layout, place_mandatory
from scene_pe.synthetic.mesh import CYL, DISK, box, cylinder
from scene_pe.synthetic.objects import GAP, Group, Item

INSTANCES = (10, 40)  # benchmark instances per room (drawn uniformly)
SIZE = ((4.0, 8.5), (3.5, 7.0))  # room width, depth (m)
L_SHAPED = 0.4  # fraction of rooms with a cut-out corner
TOP_CATEGORIES = ("table", "dining table", "coffee table", "desk", "kitchen counter")


def class_weights() -> dict[int, float]:
    """NYU40 instance class -> relative frequency, from the label rows' annotation counts."""
    w: dict[int, float] = {c: 0.0 for c in SCANNET20.instance_ids}
    for row in LABEL_ROWS:
        nyu = int(row["nyu40id"])
        if nyu in w:
            w[nyu] += float(row["count"])
    return w


def _chairs(rng: np.random.Generator) -> tuple[Group, str]:
    """A chair group: a row of touching chairs, a table with chairs, one chair or an armchair."""
    kind = rng.choice(4, p=[0.35, 0.35, 0.2, 0.1])
    if kind == 0:
        n = int(rng.integers(2, 6))
        chairs = [obj.chair(rng, "chair") for _ in range(n)]
        width = 0.52 * n + GAP * (n - 1)
        items = []
        for k, c in enumerate(chairs):
            items += obj.place_items([c], 0.0, (-width / 2 + 0.26 + k * (0.52 + GAP), 0.0, 0.0))
        return Group(items, width, 0.55, 1.0), "any"
    if kind == 1:
        return obj.table(rng, "table" if rng.random() < 0.6 else "dining table",
                         num_chairs=int(rng.integers(2, 7))), "middle"
    category = "armchair" if kind == 3 else ("office chair" if rng.random() < 0.4 else "chair")
    c = obj.chair(rng, category)
    size = 0.9 if kind == 3 else 0.55
    return Group([c], size, size, 1.0), "any"


def _builders(rng: np.random.Generator, height: float) -> dict[int, Callable[[], tuple[Group | None, str]]]:
    """NYU40 class -> a builder returning (group, where) with where in wall / middle / any / window."""
    n40 = RAW_TO_NYU40
    return {
        n40["chair"]: lambda: _chairs(rng),
        n40["table"]: lambda: (obj.table(rng, str(rng.choice(["table", "coffee table", "dining table"])),
                                         num_chairs=int(rng.integers(0, 3))), "middle"),
        n40["door"]: lambda: (obj.door(rng), "wall"),
        n40["window"]: lambda: (None, "window"),
        n40["trash can"]: lambda: (obj.trash_can(rng), "any"),
        n40["picture"]: lambda: (obj.picture(rng), "wall"),
        n40["cabinet"]: lambda: (obj.cabinet_row(rng, str(rng.choice(["cabinet", "kitchen cabinet"])),
                                                 int(rng.integers(1, 4)), tall=rng.random() < 0.35), "wall"),
        n40["desk"]: lambda: (obj.desk_row(rng, int(rng.integers(1, 4))), "wall"),
        n40["couch"]: lambda: (obj.sofa(rng, "couch" if rng.random() < 0.7 else "sofa"), "wall"),
        n40["sink"]: lambda: (obj.counter_with_sink(rng) if rng.random() < 0.5 else obj.vanity(rng), "wall"),
        n40["bed"]: lambda: (obj.bed(rng), "wall"),
        n40["bookshelf"]: lambda: (obj.bookshelf_row(rng, int(rng.integers(1, 4))), "wall"),
        n40["curtain"]: lambda: (obj.curtain(rng, height), "wall"),
        n40["toilet"]: lambda: (obj.toilet(rng), "wall"),
        n40["refrigerator"]: lambda: (obj.refrigerator(rng), "wall"),
        n40["shower curtain"]: lambda: (obj.bathtub(rng), "wall"),
        n40["bathtub"]: lambda: (obj.bathtub(rng), "wall"),
        n40["kitchen counter"]: lambda: (obj.counter_with_sink(rng), "wall"),
    }


def count_instances(items: list[Item]) -> int:
    """Annotated items of a benchmark instance class."""
    return sum(1 for it in items if it.annotated and RAW_TO_NYU40.get(it.category, 0) in SCANNET20.instance_ids)


def item_bounds(item: Item) -> np.ndarray:
    """(x0, x1, y0, y1, z0, z1) of an item's surfaces (cylinders and disks by their bounding boxes)."""
    pts = []
    for s in item.surfaces:
        a, b, c = s.frame[:, 0], s.frame[:, 1], s.frame[:, 2]
        if s.kind in (CYL, DISK):
            corners = [s.origin + sa * a + sb * b + sc * c for sa in (-1, 1) for sb in (-1, 1)
                       for sc in ((0, 1) if s.kind == CYL else (0,))]
        else:
            corners = [s.origin + sa * a + sb * b for sa in (0, 1) for sb in (0, 1)]
        pts += corners
    p = np.array(pts)
    return np.array([p[:, 0].min(), p[:, 0].max(), p[:, 1].min(), p[:, 1].max(), p[:, 2].min(), p[:, 2].max()])


def tabletop_clutter(items: list[Item], rng: np.random.Generator) -> list[Item]:
    """Small objects (boxes, lamps; annotated "box" or not annotated) standing on table-like tops.

    Placed inside the top's footprint shrunk by 20% (the box of a slightly turned
    table is a little larger than its top) and resting on it, so they touch.
    """
    out = []
    for it in items:
        if it.category not in TOP_CATEGORIES:
            continue
        x0, x1, y0, y1, _, top = item_bounds(it)
        mx, my = 0.2 * (x1 - x0), 0.2 * (y1 - y0)
        for _ in range(int(rng.integers(0, 4))):
            w, d, h = rng.uniform(0.08, 0.3), rng.uniform(0.08, 0.25), rng.uniform(0.05, 0.3)
            if x1 - x0 - 2 * mx < w or y1 - y0 - 2 * my < d:
                break
            cx, cy = rng.uniform(x0 + mx, x1 - mx - w), rng.uniform(y0 + my, y1 - my - d)
            if rng.random() < 0.3:
                r = min(w, d) / 2
                out.append(Item("lamp", cylinder((cx + r, cy + r), top + GAP, r, h, 1)))
            else:
                out.append(Item("box", box((cx, cy, top + GAP), (w, d, h), 0, skip=("-z",)),
                                annotated=rng.random() < 0.6))
    return out


def _place(p: Placer, g: Group | None, where: str) -> bool:
    if where == "window":
        return p.window_with_curtains()
    if where == "middle" or (where == "any" and p.rng.random() < 0.5):
        return p.in_middle(g)
    return p.on_wall(g) is not None


def make_scannet_layout(rng: np.random.Generator) -> Layout:
    """A ScanNet-like furnished room (see the module doc)."""
    room_type = ROOM_TYPES[int(rng.integers(len(ROOM_TYPES)))]
    width, depth = rng.uniform(*SIZE[0]), rng.uniform(*SIZE[1])
    if room_type == "bathroom":
        width, depth = width * 0.6, depth * 0.6
    height = rng.uniform(2.4, 3.0)
    notch = None
    if rng.random() < L_SHAPED:
        notch = (width * rng.uniform(0.25, 0.45), depth * rng.uniform(0.25, 0.45),
                 int(rng.choice([-1, 1])), int(rng.choice([-1, 1])))
    for attempt in range(12):
        grow = 1.0 + 0.1 * attempt
        n = None if notch is None else (notch[0] * grow, notch[1] * grow, notch[2], notch[3])
        p = Placer(rng, width * grow, depth * grow, height, n)
        if place_mandatory(p, room_type):
            break
    else:
        raise RuntimeError(f"could not lay out a {room_type} room")
    weights = class_weights()
    classes = np.array(list(weights))
    prob = np.array([weights[c] for c in classes])
    prob /= prob.sum()
    builders = _builders(rng, height)
    target = int(rng.integers(INSTANCES[0], INSTANCES[1] + 1))
    failures = 0
    while count_instances(p.items) < target and failures < 25:
        group, where = builders[int(rng.choice(classes, p=prob))]()
        failures += 0 if _place(p, group, where) else 1
    p.items += tabletop_clutter(p.items, rng)
    return finish_layout(p, room_type)
