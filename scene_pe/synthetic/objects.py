"""Furniture built from boxes, cylinders, disks and sheets, in a local frame.

Local frame of every builder: x along the object's width, centred on 0; y from
the back (y = 0, the side that goes against a wall) to the front (y = depth);
z up from the floor (z = 0). Wall-mounted things (door, window, picture) have
y = 0 on the wall plane, y > 0 inside the room. Surfaces hidden in a real scan
(bottoms on the floor, backs against a wall) are left out.

A builder returns a ``Group``: one or more ``Item`` (one object each: a raw
category and its surfaces) sharing the local frame, plus the group's extent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scene_pe.synthetic.mesh import Surface, box, cylinder, disk, move, rect

GAP = 0.005  # between objects that touch (a row of cabinets): below 2 cm, never 0


@dataclass
class Item:
    """One object: raw category and surfaces; ``annotated`` False leaves it out of the aggregation."""

    category: str
    surfaces: list[Surface]
    annotated: bool = True


@dataclass
class Group:
    """Items sharing a local frame; extent x in [-w/2, w/2], y in [0, d], z in [0, h]."""

    items: list[Item]
    width: float
    depth: float
    height: float
    wall_z: tuple[float, float] | None = None  # wall-mounted: the wall opening's z range

    def moved(self, yaw: float, shift) -> list[Item]:
        """The items rotated by ``yaw`` about z, then translated by ``shift``."""
        return place_items(self.items, yaw, shift)


def place_items(items: list[Item], yaw: float, shift) -> list[Item]:
    return [Item(it.category, move(it.surfaces, yaw, shift), it.annotated) for it in items]


def basin(lo, size, wall: float, role: int = 0, skip_back: bool = False) -> list[Surface]:
    """An open-topped container (sink, bathtub): outer sides, inner sides and bottom, rim."""
    x0, y0, z0 = lo
    sx, sy, sz = size
    out = box(lo, size, role, skip=("+z", "-z") + (("-y",) if skip_back else ()))
    ix0, iy0, isx, isy = x0 + wall, y0 + wall, sx - 2 * wall, sy - 2 * wall
    out += box((ix0, iy0, z0 + wall), (isx, isy, sz - wall), role, skip=("+z",), inward=True)
    top = z0 + sz
    out += [rect((x0, y0, top), (sx, 0, 0), (0, wall, 0), role),
            rect((x0, y0 + sy - wall, top), (sx, 0, 0), (0, wall, 0), role),
            rect((x0, iy0, top), (wall, 0, 0), (0, isy, 0), role),
            rect((x0 + sx - wall, iy0, top), (wall, 0, 0), (0, isy, 0), role)]
    return out


# ---------------------------------------------------------------- seating
def chair(rng: np.random.Generator, category: str = "chair") -> Item:
    """Chair facing +y: legs, seat, back rest (office chair: pole and round base)."""
    w, d = rng.uniform(0.42, 0.52), rng.uniform(0.42, 0.52)
    seat_z = rng.uniform(0.42, 0.48)
    s: list[Surface] = []
    if category == "office chair":
        s += box((-w / 2, 0.02, seat_z - 0.08), (w, d, 0.08), 0)
        s += cylinder((0, d / 2), 0.06, 0.025, seat_z - 0.14, 1, top=False)
        s += cylinder((0, d / 2), 0.0, 0.30, 0.06, 1)
        s += box((-w / 2 + 0.02, 0.0, seat_z + 0.05), (w - 0.04, 0.06, rng.uniform(0.45, 0.6)), 0)
    elif category == "armchair":
        w, d = rng.uniform(0.7, 0.9), rng.uniform(0.7, 0.85)
        s += box((-w / 2 + 0.14, 0.15, 0), (w - 0.28, d - 0.15, seat_z), 0, skip=("-z",))
        s += box((-w / 2, 0, 0), (w, 0.15, seat_z + 0.4), 0, skip=("-z",))
        for x in (-w / 2, w / 2 - 0.14):
            s += box((x, 0.15, 0), (0.14, d - 0.15, seat_z + 0.18), 1, skip=("-z",))
    else:
        leg = 0.035
        for x in (-w / 2, w / 2 - leg):
            for y in (0.0, d - leg):
                s += box((x, y, 0), (leg, leg, seat_z - 0.04), 1, skip=("-z",))
        s += box((-w / 2, 0, seat_z - 0.04), (w, d, 0.04), 0)
        s += box((-w / 2, 0, seat_z), (w, 0.04, rng.uniform(0.38, 0.5)), 0)
    return Item(category, s)


def sofa(rng: np.random.Generator, category: str = "couch") -> Group:
    """Sofa against a wall (back at y = 0) with 0-2 pillows on the seat."""
    w, d, seat = rng.uniform(1.5, 2.3), rng.uniform(0.8, 0.95), rng.uniform(0.4, 0.46)
    arm, back_h = 0.16, rng.uniform(0.75, 0.9)
    s = box((-w / 2 + arm, 0.2, 0), (w - 2 * arm, d - 0.2, seat), 0, skip=("-z",))
    s += box((-w / 2, 0, 0), (w, 0.2, back_h), 0, skip=("-z", "-y"))
    for x in (-w / 2, w / 2 - arm):
        s += box((x, 0.2, 0), (arm, d - 0.2, seat + 0.2), 1, skip=("-z",))
    items = [Item(category, s)]
    for k in range(int(rng.integers(0, 3))):
        x = (-1 if k == 0 else 1) * rng.uniform(0.1, w / 2 - arm - 0.3)
        items.append(Item("pillow", box((x - 0.22, 0.21, seat + GAP), (0.44, 0.14, 0.4), 0)))
    return Group(items, w, d, back_h)


# ---------------------------------------------------------------- tables and desks
def table(rng: np.random.Generator, category: str = "table", num_chairs: int = 0) -> Group:
    """Table (round for some plain tables) with chairs pushed in around it; centred on y = d/2."""
    low = category == "coffee table"
    h = rng.uniform(0.38, 0.48) if low else rng.uniform(0.72, 0.77)
    round_top = category == "table" and rng.random() < 0.4
    if round_top:
        r = rng.uniform(0.45, 0.6)
        w = d = 2 * r
        s = cylinder((0, r), h - 0.04, r, 0.04, 0, bottom=True)
        s += cylinder((0, r), 0.0, 0.04, h - 0.04, 1, top=False)
        s.append(disk((0, r, 0.02), 0.28, 1))
        s += cylinder((0, r), 0.0, 0.28, 0.02, 1, top=False)
    else:
        w = rng.uniform(0.9, 1.2) if low else rng.uniform(1.2, 1.9)
        d = rng.uniform(0.5, 0.7) if low else rng.uniform(0.8, 1.0)
        s = box((-w / 2, 0, h - 0.04), (w, d, 0.04), 0)
        leg = 0.06
        for x in (-w / 2 + 0.03, w / 2 - 0.03 - leg):
            for y in (0.03, d - 0.03 - leg):
                s += box((x, y, 0), (leg, leg, h - 0.04), 1, skip=("-z",))
    items = [Item(category, s)]
    margin = 0.0
    if num_chairs:
        per_side = min(max(1, num_chairs // 2), max(1, int(w // 0.6)))
        tuck = rng.uniform(0.08, 0.18)  # seat front pushed under the table top
        xs = (np.arange(per_side) - (per_side - 1) / 2) * (w / per_side)
        for side, n in ((0, per_side), (1, min(per_side, num_chairs - per_side))):
            for x in xs[:n]:
                c = chair(rng, "chair")
                yaw = 0.0 if side == 0 else np.pi
                y = -0.5 + tuck if side == 0 else d + 0.5 - tuck
                items += place_items([c], yaw, (x + rng.normal(0, 0.03), y, 0.0))
        margin = 0.55  # room for the chairs on both sides
    return Group(place_items(items, 0.0, (0.0, margin, 0.0)), w, d + 2 * margin, h)


def desk_row(rng: np.random.Generator, count: int) -> Group:
    """``count`` desks side by side (touching), each with a monitor and an office chair."""
    d, h = rng.uniform(0.6, 0.8), rng.uniform(0.72, 0.76)
    widths = rng.uniform(1.0, 1.5, size=count)
    total = widths.sum() + GAP * (count - 1)
    x0, items = -total / 2, []
    for w in widths:
        cx = x0 + w / 2
        s = box((x0, 0, h - 0.03), (w, d, 0.03), 0)
        for x in (x0, x0 + w - 0.025):
            s += box((x, 0.02, 0), (0.025, d - 0.04, h - 0.03), 1, skip=("-z",))
        s += box((x0 + 0.025, 0.04, h - 0.4), (w - 0.05, 0.02, 0.37), 1)
        items.append(Item("desk", s))
        mw = rng.uniform(0.45, 0.6)
        mon = box((cx - 0.1, 0.1, h), (0.2, 0.15, 0.015), 1, skip=("-z",))
        mon += box((cx - 0.02, 0.14, h + 0.015), (0.04, 0.03, 0.12), 1)
        mon += box((cx - mw / 2, 0.1, h + 0.12), (mw, 0.03, mw * 0.6), 0)
        items.append(Item("monitor", mon))
        c = chair(rng, "office chair")
        items += place_items([c], np.pi, (cx + rng.normal(0, 0.05), d + rng.uniform(0.45, 0.65), 0.0))
        x0 += w + GAP
    return Group(items, total, d + 0.7, h + 0.5)


# ---------------------------------------------------------------- storage
def cabinet_row(rng: np.random.Generator, category: str, count: int, tall: bool = False) -> Group:
    """``count`` cabinets side by side (touching): body, door panel, handle."""
    d = rng.uniform(0.45, 0.6)
    h = rng.uniform(1.6, 2.0) if tall else rng.uniform(0.8, 0.95)
    widths = rng.uniform(0.45, 0.8, size=count)
    total = widths.sum() + GAP * (count - 1)
    x0, items = -total / 2, []
    for w in widths:
        s = box((x0, 0, 0), (w, d, h), 0, skip=("-z", "-y"))
        s += box((x0 + 0.015, d, 0.08), (w - 0.03, 0.015, h - 0.1), 1, skip=("-y",))
        hx = x0 + w - 0.07 if rng.random() < 0.5 else x0 + 0.05
        s += box((hx, d + 0.015, h - 0.25), (0.02, 0.025, 0.12), 2, skip=("-y",))
        items.append(Item(category, s))
        x0 += w + GAP
    return Group(items, total, d + 0.04, h)


def bookshelf_row(rng: np.random.Generator, count: int) -> Group:
    """``count`` bookshelves side by side (touching): frame, shelves, blocks of books."""
    d, h = rng.uniform(0.28, 0.38), rng.uniform(1.4, 2.0)
    widths = rng.uniform(0.6, 1.0, size=count)
    total = widths.sum() + GAP * (count - 1)
    x0, items, t = -total / 2, [], 0.02
    for w in widths:
        s = box((x0, 0, 0), (t, d, h), 0, skip=("-z", "-y"))
        s += box((x0 + w - t, 0, 0), (t, d, h), 0, skip=("-z", "-y"))
        s += box((x0 + t, 0, h - t), (w - 2 * t, d, t), 0, skip=("-y",))
        s += box((x0 + t, 0, 0), (w - 2 * t, 0.012, h - t), 1, skip=("-y",))
        shelves = int(rng.integers(3, 6))
        for z in np.linspace(0.06, h - t, shelves + 1)[:-1]:
            s += box((x0 + t, 0.012, z), (w - 2 * t, d - 0.012, t), 0)
            bx = x0 + t + rng.uniform(0.0, 0.1)
            while True:
                bw = rng.uniform(0.12, 0.35)
                if bx + bw > x0 + w - t - 0.02:
                    break
                bh = min(rng.uniform(0.16, 0.26), (h - 0.1) / shelves - 0.04)
                s += box((bx, 0.02, z + t), (bw, d * rng.uniform(0.6, 0.85), bh), 2, skip=("-z", "-y"))
                bx += bw + rng.uniform(0.0, 0.15)
        items.append(Item("bookshelf", s))
        x0 += w + GAP
    return Group(items, total, d, h)


def refrigerator(rng: np.random.Generator) -> Group:
    w, d, h = rng.uniform(0.6, 0.85), rng.uniform(0.65, 0.75), rng.uniform(1.7, 1.9)
    split = h * rng.uniform(0.3, 0.4)
    s = box((-w / 2, 0, 0), (w, d, h), 0, skip=("-z", "-y"))
    s += box((-w / 2 + 0.01, d, split + 0.01), (w - 0.02, 0.012, 0.012), 1, skip=("-y",))
    for z0, z1 in ((0.2, split - 0.1), (split + 0.1, split + 0.6)):
        s += box((w / 2 - 0.08, d, z0), (0.025, 0.04, z1 - z0), 1, skip=("-y",))
    return Group([Item("refrigerator", s)], w, d + 0.05, h)


def counter_with_sink(rng: np.random.Generator) -> Group:
    """Kitchen counter (cupboard base, stone top) with a sink standing on it."""
    w, d, h = rng.uniform(1.2, 2.2), rng.uniform(0.58, 0.65), rng.uniform(0.88, 0.92)
    s = box((-w / 2, 0, 0), (w, d - 0.03, h - 0.04), 1, skip=("-z", "-y"))
    s += box((-w / 2, 0, h - 0.04), (w, d, 0.04), 0, skip=("-y",))
    sw, sd = rng.uniform(0.45, 0.6), rng.uniform(0.38, 0.45)
    sx = rng.uniform(-w / 2 + 0.05, w / 2 - sw - 0.05)
    sink_s = basin((sx, (d - sd) / 2, h + GAP), (sw, sd, 0.15), 0.02, 0)
    return Group([Item("kitchen counter", s), Item("sink", sink_s)], w, d, h + 0.2)


# ---------------------------------------------------------------- bedroom
def bed(rng: np.random.Generator) -> Group:
    """Bed with its head against the wall, 1-2 pillows, 0-2 nightstands (one with a lamp)."""
    w, d = rng.uniform(0.95, 1.8), rng.uniform(1.95, 2.1)
    frame_h, mat_h = rng.uniform(0.22, 0.32), rng.uniform(0.18, 0.25)
    s = box((-w / 2, 0.06, 0), (w, d - 0.06, frame_h), 0, skip=("-z",))
    s += box((-w / 2 + 0.02, 0.07, frame_h), (w - 0.04, d - 0.1, mat_h), 1, skip=("-z",))
    s += box((-w / 2, 0, 0), (w, 0.06, rng.uniform(0.9, 1.2)), 0, skip=("-z", "-y"))
    items = [Item("bed", s)]
    top = frame_h + mat_h + GAP
    pillows = 1 if w < 1.3 else 2
    for k in range(pillows):
        pw = min(0.6, w / pillows - 0.08)
        px = -w / 2 + (k + 0.5) * w / pillows - pw / 2
        items.append(Item("pillow", box((px, 0.1, top), (pw, 0.38, 0.13), 0)))
    width = w
    for side in range(int(rng.integers(0, 3))):
        nw, nd, nh = rng.uniform(0.4, 0.5), rng.uniform(0.35, 0.45), rng.uniform(0.45, 0.6)
        nx = (w / 2 + 0.05) if side == 0 else -(w / 2 + 0.05 + nw)
        ns = box((nx, 0, 0), (nw, nd, nh), 0, skip=("-z", "-y"))
        ns += box((nx + 0.02, nd, nh - 0.18), (nw - 0.04, 0.012, 0.14), 1, skip=("-y",))
        items.append(Item("nightstand", ns))
        if side == 0:
            lamp = cylinder((nx + nw / 2, nd / 2), nh + GAP, 0.07, 0.02, 1)
            lamp += cylinder((nx + nw / 2, nd / 2), nh + 0.02, 0.012, 0.25, 1, top=False)
            lamp += cylinder((nx + nw / 2, nd / 2), nh + 0.25, 0.13, 0.2, 0, top=False)
            items.append(Item("lamp", lamp))
        width = max(width, w + 2 * (0.05 + nw))
    return Group(items, width, d, 1.2)


# ---------------------------------------------------------------- bathroom
def toilet(rng: np.random.Generator) -> Group:
    bw, bd = rng.uniform(0.17, 0.2), rng.uniform(0.24, 0.28)
    s = box((-0.2, 0.0, 0.38), (0.4, 0.18, rng.uniform(0.35, 0.42)), 0, skip=("-y",))
    s += cylinder((0, 0.18 + bd - 0.05), 0.0, bw, 0.4, 0, ry=bd)
    return Group([Item("toilet", s)], 0.4, 0.18 + 2 * bd, 0.8)


def bathtub(rng: np.random.Generator) -> Group:
    """Bathtub along the wall with a shower curtain partly drawn along its front edge."""
    w, d, h = rng.uniform(1.5, 1.75), rng.uniform(0.7, 0.8), rng.uniform(0.5, 0.6)
    items = [Item("bathtub", basin((-w / 2, 0, 0), (w, d, h), 0.07, 0, skip_back=True))]
    cw = w * rng.uniform(0.45, 0.8)
    cx = -w / 2 if rng.random() < 0.5 else w / 2 - cw
    waves = max(2.0, round(cw / 0.16))
    items.append(Item("shower curtain", [rect((cx, d + 0.02, h + 0.12), (cw, 0, 0), (0, 0, 1.9 - h - 0.12),
                                              0, flip=True, amp=0.025, cycles=waves)]))
    return Group(items, w, d + 0.08, 2.0)


# ---------------------------------------------------------------- on the walls (y = 0 on the wall plane)
def door(rng: np.random.Generator) -> Group:
    w, h = rng.uniform(0.8, 0.95), rng.uniform(2.0, 2.1)
    s = box((-w / 2, -0.02, 0), (w, 0.04, h), 0, skip=("-z", "-y"))
    hx = w / 2 - 0.12 if rng.random() < 0.5 else -w / 2 + 0.08
    s += box((hx, 0.02, 1.0), (0.04, 0.06, 0.03), 1, skip=("-y",))
    return Group([Item("door", s)], w, 0.9, h, wall_z=(0.0, h))


def window(rng: np.random.Generator) -> Group:
    """Window: recessed pane, frame, sill."""
    w, h, z0 = rng.uniform(0.7, 1.5), rng.uniform(0.9, 1.3), rng.uniform(0.85, 1.0)
    f = 0.05
    s = [rect((-w / 2, -0.03, z0), (w, 0, 0), (0, 0, h), 0, flip=True)]
    s += box((-w / 2, -0.04, z0), (w, 0.07, f), 1, skip=("-y",))
    s += box((-w / 2, -0.04, z0 + h - f), (w, 0.07, f), 1, skip=("-y",))
    s += box((-w / 2, -0.04, z0 + f), (f, 0.07, h - 2 * f), 1, skip=("-y",))
    s += box((w / 2 - f, -0.04, z0 + f), (f, 0.07, h - 2 * f), 1, skip=("-y",))
    s += box((-w / 2, 0.0, z0 - 0.03), (w, 0.1, 0.03), 1, skip=("-y",))
    return Group([Item("window", s)], w, 0.15, z0 + h, wall_z=(z0 - 0.03, z0 + h))


def picture(rng: np.random.Generator) -> Group:
    w, h = rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.7)
    z0 = rng.uniform(1.15, 1.55)
    s = box((-w / 2, -0.005, z0), (w, 0.025, h), 0, skip=("-y",))
    s.append(rect((-w / 2 + 0.04, 0.021, z0 + 0.04), (0, 0, h - 0.08), (w - 0.08, 0, 0), 2))
    return Group([Item("picture", s)], w, 0.05, z0 + h, wall_z=(z0, z0 + h))


def curtain(rng: np.random.Generator, height: float) -> Group:
    """Curtain hanging in front of a wall (y = 0.08), floor to near the ceiling."""
    w = rng.uniform(0.4, 0.9)
    sheet = rect((-w / 2, 0.08, 0.05), (w, 0, 0), (0, 0, height - 0.25), 0, flip=True, amp=0.035,
                 cycles=max(2.0, round(w / 0.14)))
    return Group([Item("curtain", [sheet])], w, 0.15, height - 0.2)


# ---------------------------------------------------------------- small things
def open_cylinder(r: float, h: float, floor: float, wall: float, inner_role: int, floor_role: int
                  ) -> list[Surface]:
    """An open-topped round container standing at (0, r): outside, inside and inner floor."""
    s = cylinder((0, r), 0.0, r, h, 0, top=False)
    s += cylinder((0, r), floor, r - wall, h - floor, inner_role, top=False, inward=True)
    s.append(disk((0, r, floor), r - wall, floor_role))
    return s


def trash_can(rng: np.random.Generator) -> Group:
    r, h = rng.uniform(0.12, 0.18), rng.uniform(0.3, 0.45)
    return Group([Item("trash can", open_cylinder(r, h, 0.02, 0.01, 0, 1))], 2 * r, 2 * r, h)


def floor_lamp(rng: np.random.Generator) -> Group:
    h = rng.uniform(1.4, 1.7)
    s = cylinder((0, 0.2), 0.0, 0.15, 0.03, 1)
    s += cylinder((0, 0.2), 0.03, 0.015, h - 0.3, 1, top=False)
    s += cylinder((0, 0.2), h - 0.3, 0.2, 0.3, 0, top=False)
    return Group([Item("lamp", s)], 0.4, 0.4, h)


def clutter_box(rng: np.random.Generator, annotated: bool) -> Group:
    """A cardboard box on the floor: annotated as "box" (ignored class) or not annotated at all."""
    w, d, h = rng.uniform(0.25, 0.6), rng.uniform(0.25, 0.5), rng.uniform(0.2, 0.5)
    return Group([Item("box", box((-w / 2, 0, 0), (w, d, h), 0, skip=("-z",)), annotated)], w, d, h)


# ---------------------------------------------------------------- ScanNet200 extras (basic200 profile)
def ottoman(rng: np.random.Generator) -> Group:
    """An upholstered box on short legs' height: a padded top a little wider than the body."""
    w, d, h = rng.uniform(0.45, 0.7), rng.uniform(0.4, 0.6), rng.uniform(0.38, 0.46)
    s = box((-w / 2 + 0.02, 0.02, 0), (w - 0.04, d - 0.04, h - 0.08), 1, skip=("-z",))
    s += box((-w / 2, 0, h - 0.08 + GAP), (w, d, 0.08 - GAP), 0)
    return Group([Item("ottoman", s)], w, d, h)


def basket(rng: np.random.Generator) -> Group:
    """A wide, low open basket (shorter and wider than a trash can)."""
    r, h = rng.uniform(0.18, 0.26), rng.uniform(0.16, 0.26)
    return Group([Item("basket", open_cylinder(r, h, 0.015, 0.012, 1, 1))], 2 * r, 2 * r, h)


def bucket(rng: np.random.Generator) -> Group:
    """A small open bucket with a rim."""
    r, h = rng.uniform(0.11, 0.15), rng.uniform(0.24, 0.32)
    s = open_cylinder(r, h, 0.01, 0.008, 0, 0)
    s += cylinder((0, r), h - 0.025, r + 0.01, 0.025, 1, top=False)
    return Group([Item("bucket", s)], 2 * r + 0.02, 2 * r + 0.02, h)


def crate(rng: np.random.Generator) -> Group:
    """An open-topped crate: a box with an inner floor, slats as a second colour band."""
    w, d, h = rng.uniform(0.35, 0.55), rng.uniform(0.3, 0.45), rng.uniform(0.25, 0.35)
    s = box((-w / 2, 0, 0), (w, d, h * 0.5), 0, skip=("-z", "+z"))
    s += box((-w / 2, 0, h * 0.5 + GAP), (w, d, h * 0.5 - GAP), 1, skip=("-z", "+z"))
    s.append(rect((-w / 2 + 0.02, 0.02, 0.03), (w - 0.04, 0, 0), (0, d - 0.04, 0), 2))
    return Group([Item("crate", s)], w, d, h)


SCANNET200_EXTRAS = (ottoman, basket, bucket, crate)


def vanity(rng: np.random.Generator) -> Group:
    """Bathroom vanity: two cabinets side by side (touching) with a sink standing on one."""
    g = cabinet_row(rng, "cabinet", 2)
    sw, sd = rng.uniform(0.4, 0.5), rng.uniform(0.32, 0.4)
    top = g.height + GAP
    x0 = -g.width / 2 + rng.uniform(0.03, max(0.04, g.width / 2 - sw - 0.03))
    g.items.append(Item("sink", basin((x0, 0.05, top), (sw, sd, 0.14), 0.02, 0)))
    g.height = top + 0.14
    return g
