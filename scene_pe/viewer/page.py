"""One self-contained HTML file per scene: three.js, the viewer's script and style, and the scene's data.

Nothing is loaded from anywhere: the page opens from file:// in any browser
with WebGL, on a machine without Python or a network. The data is JSON in a
``<script type="application/json">`` element (every ``<`` escaped, so no
string in it can close the element); the per-point arrays in it are base64
(scene_pe/viewer/layers.py).
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass
from pathlib import Path

from scene_pe.util.io import atomic_open
from scene_pe.viewer.build import JS, read_bundle
from scene_pe.viewer.layers import MAX_MB, MAX_POINTS, SceneView, page_data

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - scene_pe viewer</title>
<style>
{css}
</style>
</head>
<body>
<div id="app"><aside id="side"></aside><main id="view"></main></div>
<script type="application/json" id="scene-data">{data}</script>
<script>
{three}
</script>
<script>
{viewer}
</script>
</body>
</html>
"""


@dataclass(frozen=True)
class ViewerPage:
    path: Path
    bytes: int
    num_drawn: int
    num_vertices: int
    seconds: float


def _script(text: str, what: str) -> str:
    if "</script" in text.lower():
        raise ValueError(f"{what} holds '</script' and cannot be embedded in a page")
    return text


def render_page(view: SceneView, max_points: int = MAX_POINTS, max_mb: float = MAX_MB) -> tuple[str, dict]:
    """(the page's HTML, its data object)."""
    parts = {"title": html.escape(view.title or view.name), "css": (JS / "viewer.css").read_text(encoding="utf-8"),
             "three": _script(read_bundle(), "the three.js bundle"),
             "viewer": _script((JS / "viewer.js").read_text(encoding="utf-8"), "viewer.js")}
    fixed = len(TEMPLATE) + sum(len(v) for v in parts.values())
    data = page_data(view, fixed, max_points, max_mb)
    text = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    return TEMPLATE.format(data=text, **parts), data


def write_viewer(path: str | Path, view: SceneView, max_points: int = MAX_POINTS, max_mb: float = MAX_MB
                 ) -> ViewerPage:
    """Write the page atomically; what it holds and how long it took."""
    t = time.perf_counter()
    page, data = render_page(view, max_points, max_mb)
    raw = page.encode("utf-8")
    with atomic_open(path, "wb") as fh:
        fh.write(raw)
    return ViewerPage(Path(path), len(raw), data["num_drawn"], data["num_vertices"], time.perf_counter() - t)
