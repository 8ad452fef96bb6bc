"""The HTML viewer: one self-contained page per scene with its predictions, GT and errors.

    from scene_pe.viewer import SceneView, write_viewer
    write_viewer("room.html", SceneView(name, xyz, pred, label_set, records, colors=rgb, gt=gt))

tools/predict.py writes NAME.html (``--no-html`` not), tools/test.py ``--html``
one page per scene (``saved.write_saved_viewers``). Layers: input colours,
instances, classes, uncertainty and, with GT, GT instances and errors
(layers.py); three.js draws the points (build.py bundles it from npm), the
page's own script is js/viewer.js. browser.py drives headless Chromium for the
tests and the benchmark.
"""

from scene_pe.viewer.build import ViewerBundleMissing
from scene_pe.viewer.layers import MAX_MB, MAX_POINTS, SceneView
from scene_pe.viewer.page import ViewerPage, render_page, write_viewer

__all__ = ["MAX_MB", "MAX_POINTS", "SceneView", "ViewerBundleMissing", "ViewerPage", "render_page", "write_viewer"]
