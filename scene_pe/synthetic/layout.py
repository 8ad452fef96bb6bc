"""Room layouts: a floor, four walls (with openings) and furniture groups.

Built in the axis-aligned frame (room centred on the origin, floor at z = 0,
walls along x and y). Groups go against a wall (back to the wall) or in the
middle; a placement is kept when its axis-aligned box is inside the room and
clear of all earlier ones (so separate groups never touch by accident: the
touching instances are the intended ones inside a group, e.g. a row of
cabinets). Doors, windows and pictures cut openings into their wall.

Each room type has mandatory groups giving at least four benchmark instance
classes and one row of touching same-class instances; when they do not fit,
the room is enlarged and the layout redone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from scene_pe.synthetic import objects as obj
from scene_pe.synthetic.mesh import rect
from scene_pe.synthetic.objects import Group, Item

ROOM_TYPES = ("bedroom", "living", "office", "kitchen", "bathroom")
# (width range, depth range) in metres per room type.
ROOM_SIZES = {
    "bedroom": ((3.4, 5.0), (3.2, 4.5)), "living": ((4.2, 6.5), (3.6, 5.5)),
    "office": ((4.0, 6.0), (3.5, 5.0)), "kitchen": ((3.8, 6.0), (3.4, 5.0)),
    "bathroom": ((2.5, 3.4), (2.3, 3.2)),
}
CLEARANCE = 0.05  # between separately placed groups
TRIES = 40


@dataclass
class Wall:
    start: np.ndarray  # (3,) corner where the wall begins (z = 0)
    direction: np.ndarray  # (3,) unit, along the wall; the room is on its left
    length: float
    openings: list[tuple[float, float, float, float]] = field(default_factory=list)  # s0, s1, z0, z1

    @property
    def normal(self) -> np.ndarray:  # into the room
        return np.array([-self.direction[1], self.direction[0], 0.0])

    def surfaces(self, height: float) -> list:
        """The wall's rectangles around its openings, facing into the room."""
        out, cursor = [], 0.0

        def piece(s0: float, s1: float, z0: float, z1: float) -> None:
            if s1 - s0 > 1e-6 and z1 - z0 > 1e-6:
                o = self.start + self.direction * s0 + np.array([0, 0, z0])
                out.append(rect(o, (0, 0, z1 - z0), self.direction * (s1 - s0)))

        for s0, s1, z0, z1 in sorted(self.openings):
            piece(cursor, s0, 0.0, height)
            piece(s0, s1, 0.0, z0)
            piece(s0, s1, z1, height)
            cursor = s1
        piece(cursor, self.length, 0.0, height)
        return out


@dataclass
class Layout:
    room_type: str
    width: float
    depth: float
    height: float
    items: list[Item]  # floor, walls, then the furniture, in the aligned frame
    notch: tuple[float, float, int, int] | None = None  # L-shaped room: the cut-out corner (room_corners)


def room_corners(width: float, depth: float, notch: tuple[float, float, int, int] | None) -> np.ndarray:
    """(K, 2) corners of the room's floor polygon, counter-clockwise (the room on each wall's left).

    ``notch`` = (a, b, sx, sy) cuts an a x b rectangle out of the corner at
    (sx * width / 2, sy * depth / 2): an L-shaped room.
    """
    w, d = width / 2, depth / 2
    if notch is None:
        return np.array([(-w, -d), (w, -d), (w, d), (-w, d)])
    a, b, sx, sy = notch
    c = np.array([(-w, -d), (w, -d), (w, d - b), (w - a, d - b), (w - a, d), (-w, d)])  # notch at (+x, +y)
    c = c * np.array([sx, sy])
    return c if sx * sy > 0 else c[::-1].copy()  # a mirror reverses the winding


def notch_box(width: float, depth: float, height: float, notch: tuple[float, float, int, int]) -> np.ndarray:
    """The cut-out corner as an occupied box (x0, x1, y0, y1, z0, z1), so nothing is placed there."""
    a, b, sx, sy = notch
    xs = sorted((sx * width / 2, sx * (width / 2 - a)))
    ys = sorted((sy * depth / 2, sy * (depth / 2 - b)))
    return np.array([xs[0], xs[1], ys[0], ys[1], -1.0, height + 1.0])


class Placer:
    def __init__(self, rng: np.random.Generator, width: float, depth: float, height: float,
                 notch: tuple[float, float, int, int] | None = None):
        self.rng, self.width, self.depth, self.height, self.notch = rng, width, depth, height, notch
        c = room_corners(width, depth, notch)
        self.walls = []
        for k in range(len(c)):
            p, q = np.array([*c[k], 0.0]), np.array([*c[(k + 1) % len(c)], 0.0])
            self.walls.append(Wall(p, (q - p) / np.linalg.norm(q - p), float(np.linalg.norm(q - p))))
        self.boxes: list[np.ndarray] = [] if notch is None else [notch_box(width, depth, height, notch)]
        self.items: list[Item] = []

    def _aabb(self, g: Group, yaw: float, shift: np.ndarray) -> np.ndarray:
        cx = np.array([-g.width / 2, g.width / 2, g.width / 2, -g.width / 2])
        cy = np.array([0.0, 0.0, g.depth, g.depth])
        x = np.cos(yaw) * cx - np.sin(yaw) * cy + shift[0]
        y = np.sin(yaw) * cx + np.cos(yaw) * cy + shift[1]
        z0, z1 = g.wall_z if g.wall_z is not None else (0.0, g.height)
        return np.array([x.min(), x.max(), y.min(), y.max(), z0, z1])

    def _fits(self, box: np.ndarray) -> bool:
        eps = 1e-6
        if box[0] < -self.width / 2 - eps or box[1] > self.width / 2 + eps:
            return False
        if box[2] < -self.depth / 2 - eps or box[3] > self.depth / 2 + eps:
            return False
        for b in self.boxes:
            if (box[0] < b[1] + CLEARANCE and b[0] < box[1] + CLEARANCE and box[2] < b[3] + CLEARANCE
                    and b[2] < box[3] + CLEARANCE and box[4] < b[5] and b[4] < box[5]):
                return False
        return True

    def _commit(self, g: Group, yaw: float, shift: np.ndarray, box: np.ndarray) -> None:
        self.boxes.append(box)
        self.items += g.moved(yaw, shift)

    def on_wall(self, g: Group, wall: int | None = None, s: float | None = None) -> tuple[int, float] | None:
        """Put ``g`` with its back to a wall (random wall and position unless given)."""
        gap = 0.0 if g.wall_z is not None else self.rng.uniform(0.01, 0.03)
        for _ in range(TRIES if s is None else 1):
            k = int(self.rng.integers(len(self.walls))) if wall is None else wall
            w = self.walls[k]
            if g.width + 0.04 > w.length:
                continue
            pos = self.rng.uniform(g.width / 2 + 0.02, w.length - g.width / 2 - 0.02) if s is None else s
            yaw = float(np.arctan2(w.direction[1], w.direction[0]))
            shift = w.start + w.direction * pos + w.normal * gap
            box = self._aabb(g, yaw, shift)
            if self._fits(box):
                self._commit(g, yaw, shift, box)
                if g.wall_z is not None:
                    w.openings.append((pos - g.width / 2, pos + g.width / 2, *g.wall_z))
                return k, pos
        return None

    def in_middle(self, g: Group) -> bool:
        """Put ``g`` somewhere in the room, turned by a multiple of 90 degrees (plus a little)."""
        for _ in range(TRIES):
            yaw = float(self.rng.integers(4) * np.pi / 2 + self.rng.normal(0.0, 0.08))
            centre = np.array([self.rng.uniform(-self.width / 2, self.width / 2) * 0.6,
                               self.rng.uniform(-self.depth / 2, self.depth / 2) * 0.6, 0.0])
            shift = centre - np.array([-np.sin(yaw), np.cos(yaw), 0.0]) * g.depth / 2
            box = self._aabb(g, yaw, shift)
            if self._fits(box):
                self._commit(g, yaw, shift, box)
                return True
        return False

    def window_with_curtains(self) -> bool:
        g = obj.window(self.rng)
        placed = self.on_wall(g)
        if placed is None:
            return False
        if self.rng.random() < 0.6:
            k, s = placed
            for side in (-1, 1):
                c = obj.curtain(self.rng, self.height)
                self.on_wall(c, k, s + side * (g.width / 2 + c.width / 2 + CLEARANCE + 0.01))
        return True


def place_mandatory(p: Placer, room_type: str) -> bool:
    rng = p.rng
    if p.on_wall(obj.door(rng)) is None:
        return False
    # Ignore handling in every room: an object of a non-benchmark class (NYU40 "box")
    # and one left out of the annotation.
    for annotated in (True, False):
        if p.on_wall(obj.clutter_box(rng, annotated=annotated)) is None:
            return False
    if room_type == "bedroom":
        ok = p.on_wall(obj.bed(rng)) is not None
        ok = ok and p.on_wall(obj.cabinet_row(rng, "cabinet", 2, tall=rng.random() < 0.5)) is not None
        return ok and p.window_with_curtains()
    if room_type == "living":
        ok = p.on_wall(obj.sofa(rng, "couch" if rng.random() < 0.7 else "sofa")) is not None
        ok = ok and p.on_wall(obj.bookshelf_row(rng, int(rng.integers(2, 4)))) is not None
        ok = ok and p.in_middle(obj.table(rng, "coffee table"))
        return ok and p.window_with_curtains()
    if room_type == "office":
        ok = p.on_wall(obj.desk_row(rng, int(rng.integers(2, 4)))) is not None
        store = (obj.cabinet_row(rng, "cabinet", int(rng.integers(1, 3)), tall=rng.random() < 0.5)
                 if rng.random() < 0.5 else obj.bookshelf_row(rng, int(rng.integers(1, 3))))
        ok = ok and p.on_wall(store) is not None
        return ok and p.window_with_curtains()
    if room_type == "kitchen":
        ok = p.on_wall(obj.cabinet_row(rng, "kitchen cabinet", int(rng.integers(2, 5)))) is not None
        ok = ok and p.on_wall(obj.counter_with_sink(rng)) is not None
        ok = ok and p.on_wall(obj.refrigerator(rng)) is not None
        name = "dining table" if rng.random() < 0.6 else "table"
        ok = ok and p.in_middle(obj.table(rng, name, num_chairs=int(rng.integers(2, 7))))
        return ok and p.window_with_curtains()
    if room_type == "bathroom":
        ok = p.on_wall(obj.bathtub(rng)) is not None
        ok = ok and p.on_wall(obj.toilet(rng)) is not None
        return ok and p.on_wall(obj.vanity(rng)) is not None
    raise ValueError(f"unknown room type {room_type!r}")


def _optional(p: Placer, room_type: str) -> None:
    """Extra furniture where it fits (a failed placement is simply skipped)."""
    rng = p.rng
    extra: list[Group] = []
    if room_type == "bedroom" and rng.random() < 0.5:
        extra.append(obj.desk_row(rng, 1))
    if room_type == "office":
        if rng.random() < 0.5:
            extra.append(obj.desk_row(rng, int(rng.integers(1, 3))))
        if rng.random() < 0.6:
            extra.append(obj.cabinet_row(rng, "cabinet", int(rng.integers(1, 3)), tall=rng.random() < 0.5))
        if rng.random() < 0.4:
            extra.append(obj.bookshelf_row(rng, int(rng.integers(1, 3))))
    if room_type == "kitchen" and rng.random() < 0.4:
        extra.append(obj.cabinet_row(rng, "kitchen cabinet", int(rng.integers(1, 3)), tall=True))
    if room_type == "living" and rng.random() < 0.5:
        extra.append(obj.cabinet_row(rng, "cabinet", 1))
    if room_type == "living":
        extra += [obj.sofa(rng, "couch") for _ in range(int(rng.random() < 0.3))]
        for _ in range(int(rng.integers(0, 3))):
            g = obj.Group([obj.chair(rng, "armchair")], 0.9, 0.85, 0.9)
            if rng.random() < 0.5:
                p.in_middle(g)
            else:
                p.on_wall(g)
    if room_type == "office" and rng.random() < 0.5:
        p.in_middle(obj.table(rng, "table", num_chairs=int(rng.integers(2, 5))))
    if room_type in ("bathroom", "kitchen") and rng.random() < 0.5:
        p.window_with_curtains()
    if room_type == "living" and rng.random() < 0.5:
        extra.append(obj.floor_lamp(rng))
    extra += [obj.picture(rng) for _ in range(int(rng.integers(0, 3)))]
    extra += [obj.trash_can(rng) for _ in range(int(rng.integers(1, 3)))]
    extra += [obj.clutter_box(rng, annotated=rng.random() < 0.5) for _ in range(int(rng.integers(0, 2)))]
    for g in extra:
        p.on_wall(g)
    if room_type != "bathroom" and rng.random() < 0.5:
        p.window_with_curtains()


def place_scannet200_extras(p: Placer) -> None:
    """1-3 objects of ScanNet200 categories outside the 20-class benchmark (common and tail
    splits: ottoman, basket, bucket, crate), against a wall or in the middle where they fit."""
    rng = p.rng
    for _ in range(int(rng.integers(1, 4))):
        g = obj.SCANNET200_EXTRAS[int(rng.integers(len(obj.SCANNET200_EXTRAS)))](rng)
        if rng.random() < 0.5:
            p.in_middle(g)
        else:
            p.on_wall(g)


def make_layout(rng: np.random.Generator, room_type: str | None = None,
                extras: Callable[[Placer], None] | None = None) -> Layout:
    """A furnished room of ``room_type`` (random when None); ``extras`` places more objects last
    (the random draws of a room without extras are unchanged)."""
    room_type = room_type or ROOM_TYPES[int(rng.integers(len(ROOM_TYPES)))]
    (w0, w1), (d0, d1) = ROOM_SIZES[room_type]
    width, depth, height = rng.uniform(w0, w1), rng.uniform(d0, d1), rng.uniform(2.3, 2.8)
    for attempt in range(12):
        grow = 1.0 + 0.1 * attempt
        p = Placer(rng, width * grow, depth * grow, height)
        if place_mandatory(p, room_type):
            break
    else:
        raise RuntimeError(f"could not lay out a {room_type} room")
    _optional(p, room_type)
    if extras is not None:
        extras(p)
    return finish_layout(p, room_type)


def floor_item(width: float, depth: float, notch: tuple[float, float, int, int] | None) -> Item:
    """The floor: one rectangle, or two for an L-shaped room (the full-width band and the rest)."""
    if notch is None:
        return Item("floor", [rect((-width / 2, -depth / 2, 0.0), (width, 0, 0), (0, depth, 0))])
    a, b, sx, sy = notch
    y_full = (-depth / 2, depth / 2 - b) if sy > 0 else (-depth / 2 + b, depth / 2)
    x_part = (-width / 2, width / 2 - a) if sx > 0 else (-width / 2 + a, width / 2)
    y_part = (depth / 2 - b, depth / 2) if sy > 0 else (-depth / 2, -depth / 2 + b)
    return Item("floor", [rect((-width / 2, y_full[0], 0.0), (width, 0, 0), (0, y_full[1] - y_full[0], 0)),
                          rect((x_part[0], y_part[0], 0.0), (x_part[1] - x_part[0], 0, 0), (0, b, 0))])


def finish_layout(p: Placer, room_type: str) -> Layout:
    """The placed furniture plus floor and walls (with their openings) as a Layout."""
    walls = [Item("wall", w.surfaces(p.height)) for w in p.walls]
    return Layout(room_type, p.width, p.depth, p.height, [floor_item(p.width, p.depth, p.notch), *walls, *p.items],
                  p.notch)
