"""Raw categories of the synthetic scenes: their label-map rows and colours.

``LABEL_ROWS`` are the rows of ``scannetv2-labels.combined.tsv`` for every raw
category the generator uses (values as in the ScanNet v2 release: ScanNet id,
NYU40 id and class, eigen13, ModelNet, ShapeNet, WordNet, mpcat40). The
categories cover the 18 benchmark instance classes, the two stuff classes
(wall, floor) and a few NYU40 classes outside the benchmark (pillow, lamp,
nightstand, box, monitor), whose vertices must end up ignored.
"""

from __future__ import annotations

import numpy as np

from scene_pe.data.scannet_files import TSV_COLUMNS

# id, raw_category, category, count, nyu40id, eigen13id, nyuClass, nyu40class, eigen13class,
# ModelNet40, ModelNet10, ShapeNetCore55, synsetoffset, wnsynsetid, wnsynsetkey, mpcat40, mpcat40index
_ROWS = (
    (1, "wall", "wall", 8277, 1, 12, "wall", "wall", "Wall", "", "", "", "", "n04546855", "wall.n.01", "wall", 1),
    (2, "chair", "chair", 4646, 5, 4, "chair", "chair", "Chair", "chair", "chair", "chair", 3001627,
     "n03001627", "chair.n.01", "chair", 3),
    (3, "floor", "floor", 1553, 2, 5, "floor", "floor", "Floor", "", "", "", "", "n03365592", "floor.n.01",
     "floor", 2),
    (5, "door", "door", 1483, 8, 12, "door", "door", "Wall", "door", "", "", "", "n03221720", "door.n.01",
     "door", 4),
    (16, "window", "window", 1209, 9, 13, "window", "window", "Window", "", "", "", "", "n04587648",
     "window.n.01", "window", 9),
    (4, "table", "table", 1170, 7, 10, "table", "table", "Table", "table", "table", "table", 4379243,
     "n04379243", "table.n.02", "table", 5),
    (56, "trash can", "trash can", 1090, 39, 6, "garbage bin", "otherfurniture", "Furniture", "", "",
     "trash_bin", 2747177, "n02747177", "ashcan.n.01", "objects", 39),
    (13, "pillow", "pillow", 937, 18, 7, "pillow", "pillow", "Objects", "", "", "pillow", 3938244,
     "n03938244", "pillow.n.01", "cushion", 8),
    (15, "picture", "picture", 862, 11, 8, "picture", "picture", "Picture", "", "", "", "", "n03931044",
     "picture.n.01", "picture", 6),
    (26, "box", "box", 775, 29, 7, "box", "box", "Objects", "", "", "", "", "n02883344", "box.n.01",
     "objects", 39),
    (19, "monitor", "monitor", 765, 40, 7, "monitor", "otherprop", "Objects", "monitor", "monitor",
     "tv or monitor", 3211117, "n03782190", "monitor.n.04", "objects", 39),
    (7, "cabinet", "cabinet", 731, 3, 6, "cabinet", "cabinet", "Furniture", "", "", "cabinet", 2933112,
     "n02933112", "cabinet.n.01", "cabinet", 7),
    (9, "desk", "desk", 680, 14, 10, "desk", "desk", "Table", "desk", "desk", "table", 4379243,
     "n03179701", "desk.n.01", "table", 5),
    (10, "office chair", "office chair", 595, 5, 4, "chair", "chair", "Chair", "chair", "chair", "chair",
     3001627, "n04373704", "swivel_chair.n.01", "chair", 3),
    (6, "couch", "couch", 502, 6, 9, "sofa", "sofa", "Sofa", "sofa", "sofa", "sofa", 4256520,
     "n04256520", "sofa.n.01", "sofa", 10),
    (14, "sink", "sink", 488, 34, 7, "sink", "sink", "Objects", "sink", "", "", "", "n04223580",
     "sink.n.01", "sink", 15),
    (28, "lamp", "lamp", 419, 35, 7, "lamp", "lamp", "Objects", "lamp", "", "lamp", 3636649,
     "n03636649", "lamp.n.02", "lighting", 28),
    (11, "bed", "bed", 370, 4, 1, "bed", "bed", "Bed", "bed", "bed", "bed", 2818832, "n02818832",
     "bed.n.01", "bed", 11),
    (18, "bookshelf", "bookshelf", 360, 10, 6, "bookshelf", "bookshelf", "Furniture", "bookshelf", "",
     "bookshelf", 2871439, "n02871439", "bookshelf.n.01", "shelving", 31),
    (21, "curtain", "curtain", 347, 16, 13, "curtain", "curtain", "Window", "curtain", "", "", "",
     "n03151077", "curtain.n.01", "curtain", 12),
    (29, "kitchen cabinet", "kitchen cabinet", 310, 3, 6, "cabinet", "cabinet", "Furniture", "", "", "",
     "", "n02933112", "cabinet.n.01", "cabinet", 7),
    (23, "armchair", "armchair", 281, 5, 4, "chair", "chair", "Chair", "chair", "chair", "chair", 3001627,
     "n02738535", "armchair.n.01", "chair", 3),
    (24, "coffee table", "coffee table", 258, 7, 10, "coffee table", "table", "Table", "table", "table",
     "table", 4379243, "n03063968", "coffee_table.n.01", "table", 5),
    (17, "toilet", "toilet", 256, 33, 7, "toilet", "toilet", "Objects", "toilet", "toilet", "", "",
     "n04446276", "toilet.n.01", "toilet", 18),
    (34, "nightstand", "nightstand", 224, 32, 6, "night stand", "night stand", "Furniture", "night_stand",
     "night_stand", "", "", "n03015254", "chest_of_drawers.n.01", "chest_of_drawers", 13),
    (27, "refrigerator", "refrigerator", 154, 24, 6, "refridgerator", "refridgerator", "Furniture", "", "",
     "", "", "n04070727", "refrigerator.n.01", "appliances", 37),
    (55, "shower curtain", "shower curtain", 144, 28, 7, "shower curtain", "shower curtain", "Objects",
     "curtain", "", "", "", "n04209239", "shower_curtain.n.01", "curtain", 12),
    (42, "bathtub", "bathtub", 144, 36, 7, "bathtub", "bathtub", "Objects", "bathtub", "bathtub", "tub",
     2808440, "n02808440", "bathtub.n.01", "bathtub", 25),
    (159, "kitchen counter", "kitchen counter", 140, 12, 6, "counter", "counter", "Furniture", "table",
     "table", "table", 4379243, "n03116530", "counter.n.01", "counter", 26),
    (45, "dining table", "dining table", 19, 7, 10, "table", "table", "Table", "table", "table", "table",
     4379243, "n04379243", "table.n.02", "table", 5),
    (1313, "sofa", "sofa", 1, 6, 9, "sofa", "sofa", "Sofa", "sofa", "sofa", "sofa", 4256520, "n04256520",
     "sofa.n.01", "sofa", 10),
)
LABEL_ROWS: tuple[dict[str, object], ...] = tuple(dict(zip(TSV_COLUMNS, row)) for row in _ROWS)

# The ``basic200`` profile's extra categories: two of ScanNet200's common split, two of its
# tail. ``id`` and ``raw_category`` are ScanNet200's (its id is the tsv's ``id``); no release
# tsv is at hand here for the other columns, so they carry NYU40 "otherprop" (40, outside the
# ScanNet v2 benchmark: ignored by the 20-class label set) and are otherwise left empty.
SCANNET200_EXTRA = {"ottoman": 67, "basket": 73, "bucket": 102, "crate": 233}
EXTRA_LABEL_ROWS: tuple[dict[str, object], ...] = tuple(
    {c: "" for c in TSV_COLUMNS} | {"id": i, "raw_category": name, "category": name, "nyu40id": 40,
                                    "nyu40class": "otherprop", "mpcat40": "objects", "mpcat40index": 39}
    for name, i in SCANNET200_EXTRA.items())
RAW_TO_NYU40: dict[str, int] = {str(r["raw_category"]): int(r["nyu40id"]) for r in LABEL_ROWS + EXTRA_LABEL_ROWS}

# Colours (RGB) per raw category: (main, secondary, tertiary) for the object's parts.
# Classes differ in colour as well as in shape so both cues are learnable.
COLORS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "wall": ((205, 200, 188), (205, 200, 188), (205, 200, 188)),
    "floor": ((150, 112, 78), (120, 120, 125), (190, 188, 180)),  # one of wood / carpet / tiles
    "cabinet": ((200, 172, 130), (235, 232, 222), (90, 90, 95)),
    "kitchen cabinet": ((235, 232, 222), (200, 172, 130), (90, 90, 95)),
    "bed": ((105, 72, 50), (236, 236, 230), (150, 170, 200)),
    "chair": ((55, 80, 145), (45, 45, 48), (55, 80, 145)),
    "office chair": ((35, 35, 40), (125, 125, 130), (35, 35, 40)),
    "armchair": ((150, 60, 50), (90, 60, 40), (150, 60, 50)),
    "couch": ((95, 115, 70), (70, 85, 55), (95, 115, 70)),
    "sofa": ((130, 110, 150), (100, 85, 120), (130, 110, 150)),
    "table": ((170, 120, 80), (85, 62, 42), (170, 120, 80)),
    "dining table": ((150, 100, 60), (70, 50, 35), (150, 100, 60)),
    "coffee table": ((60, 50, 45), (160, 160, 165), (60, 50, 45)),
    "desk": ((222, 222, 216), (140, 140, 145), (60, 60, 65)),
    "door": ((160, 102, 62), (205, 205, 210), (160, 102, 62)),
    "window": ((165, 198, 225), (240, 240, 240), (165, 198, 225)),
    "bookshelf": ((120, 80, 50), (120, 80, 50), (180, 60, 60)),
    "picture": ((60, 45, 35), (210, 170, 90), (60, 120, 170)),
    "kitchen counter": ((62, 62, 68), (228, 224, 214), (62, 62, 68)),
    "curtain": ((180, 62, 72), (180, 62, 72), (180, 62, 72)),
    "refrigerator": ((226, 229, 233), (150, 150, 155), (226, 229, 233)),
    "shower curtain": ((228, 238, 248), (228, 238, 248), (228, 238, 248)),
    "toilet": ((246, 246, 244), (230, 230, 226), (246, 246, 244)),
    "sink": ((200, 206, 214), (170, 175, 182), (200, 206, 214)),
    "bathtub": ((242, 242, 238), (225, 225, 220), (242, 242, 238)),
    "trash can": ((70, 125, 72), (55, 100, 58), (70, 125, 72)),
    "pillow": ((232, 200, 120), (232, 200, 120), (232, 200, 120)),
    "lamp": ((242, 222, 172), (80, 80, 85), (242, 222, 172)),
    "nightstand": ((132, 92, 60), (90, 90, 95), (132, 92, 60)),
    "box": ((182, 142, 92), (182, 142, 92), (182, 142, 92)),
    "monitor": ((22, 22, 26), (60, 60, 65), (22, 22, 26)),
    "ottoman": ((176, 84, 150), (120, 60, 105), (176, 84, 150)),
    "basket": ((196, 160, 96), (150, 118, 66), (196, 160, 96)),
    "bucket": ((230, 120, 30), (200, 200, 205), (230, 120, 30)),
    "crate": ((92, 150, 176), (60, 110, 130), (92, 150, 176)),
}

# Scene types written to the .txt (names used by ScanNet's scene_types list).
SCENE_TYPES = {
    "bedroom": "Bedroom / Hotel", "living": "Living room / Lounge", "office": "Office",
    "kitchen": "Kitchen", "bathroom": "Bathroom",
}


def used_label_rows(categories: set[str] | None = None, extra: bool = False) -> list[dict[str, object]]:
    """The label-map rows (all, or those of ``categories``), in the release's row order;
    ``extra``: with the ``basic200`` profile's rows."""
    rows = LABEL_ROWS + (EXTRA_LABEL_ROWS if extra else ())
    return [r for r in rows if categories is None or r["raw_category"] in categories]


def instance_color(category: str, rng: np.random.Generator) -> np.ndarray:
    """(3, 3) float: the category's part colours with a per-instance variation."""
    base = np.asarray(COLORS[category], dtype=np.float64)
    if category == "floor":  # a floor is wood, carpet or tiles: one colour for all parts
        base = np.repeat(base[rng.integers(3)][None], 3, axis=0)
    gain = rng.uniform(0.88, 1.12)  # brightness
    tint = rng.normal(0.0, 6.0, size=3)  # slight hue change
    return np.clip(base * gain + tint, 0, 255)
