"""A picture of a prediction a person can look at without a 3D viewer: ``NAME.png``.

Three panels of the scan in the model's frame (z up): instances seen from
above, instances in a perspective view from a raised corner, and semantic
classes from above with a legend. Instance colours are those of the
``NAME.instances.ply`` (scene_pe.viz), class colours ScanNet's NYU40 palette.
All views drop what lies more than ``TOP_CUT`` above the floor, so a ceiling
does not hide the room; the perspective view culls back faces (points whose
normal faces away from the camera), so the near walls do not hide it either.

Renderers: ``open3d`` (its headless OffscreenRenderer: lit points, needs EGL
or Vulkan) where it starts, else ``matplotlib`` (Agg, on any CPU): square
unantialiased markers drawn far to near, so every instance keeps its exact
colour in the picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scene_pe.labels.label_set import SCANNET20, LabelSet
from scene_pe.util.io import atomic_open
from scene_pe.viz import class_palette, instance_colors, semantic_colors

TOP_CUT = 2.0        # metres above the lowest point shown in the top views
MAX_POINTS = 200_000  # per panel: a deterministic subsample above this
PANEL_PX = 700
DPI = 100


def subsample(n: int, budget: int = MAX_POINTS) -> np.ndarray:
    """Sorted indices of at most ``budget`` of ``n`` points: all of them, or a uniform random subset
    (seeded: the same subset every time), which keeps the density even over the scan."""
    if n <= budget:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, budget, replace=False))


def _marker_size(xy: np.ndarray) -> float:
    """Square marker side (points^2) so that neighbouring points about touch."""
    span = np.ptp(xy, axis=0).max() + 1e-9
    area = np.prod(np.ptp(xy, axis=0) + 1e-3)
    spacing = np.sqrt(area / max(len(xy), 1))
    side_px = max(1.0, 2.5 * spacing * PANEL_PX / span)
    return float((side_px * 72.0 / DPI) ** 2)


AZIMUTH, ELEVATION = -55.0, 35.0  # degrees: the perspective camera's corner


def perspective(xyz: np.ndarray, azimuth: float = AZIMUTH, elevation: float = ELEVATION
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 2) image-plane coordinates, (N,) depth and the eye of a pinhole camera on a raised corner."""
    centre = (xyz.min(axis=0) + xyz.max(axis=0)) / 2.0
    radius = np.linalg.norm(np.ptp(xyz, axis=0)) / 2.0 + 1e-6
    az, el = np.radians(azimuth), np.radians(elevation)
    forward = -np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    eye = centre - 2.2 * radius * forward
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    rel = xyz - eye
    depth = rel @ forward
    return np.stack([rel @ right, rel @ up], axis=1) / depth[:, None], depth, eye


def _scatter(ax, xy: np.ndarray, colors: np.ndarray, order: np.ndarray) -> None:
    ax.scatter(xy[order, 0], xy[order, 1], c=colors[order] / 255.0, s=_marker_size(xy), marker="s",
               linewidths=0, antialiased=False, rasterized=True)
    ax.set_aspect("equal")
    ax.set_axis_off()


def open3d_views(xyz: np.ndarray, colors: np.ndarray) -> list[np.ndarray] | None:
    """[top, perspective] RGB images from open3d's offscreen renderer; None where it cannot start."""
    try:
        import open3d as o3d
        from open3d.visualization import rendering

        renderer = rendering.OffscreenRenderer(PANEL_PX, PANEL_PX)
    except Exception:  # noqa: BLE001 - no EGL / Vulkan / display: use matplotlib
        return None
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz.astype(np.float64)))
    pcd.colors = o3d.utility.Vector3dVector(colors / 255.0)
    material = rendering.MaterialRecord()
    material.shader, material.point_size = "defaultUnlit", 3.0
    renderer.scene.set_background([1.0, 1.0, 1.0, 1.0])
    renderer.scene.add_geometry("scan", pcd, material)
    centre = (xyz.min(axis=0) + xyz.max(axis=0)) / 2.0
    radius = float(np.linalg.norm(np.ptp(xyz, axis=0))) / 2.0 + 1e-6
    images = []
    for eye, up in ((centre + [0, 0, 2.5 * radius], [0, 1, 0]),
                    (centre + radius * np.array([1.3, -1.9, 1.4]), [0, 0, 1])):
        renderer.setup_camera(50.0, centre, eye, up)
        images.append(np.asarray(renderer.render_to_image()))
    return images


def render_png(path: str | Path, xyz: np.ndarray, normals: np.ndarray, instance: np.ndarray,
               labels: np.ndarray, semantic: np.ndarray, title: str, renderer: str = "auto",
               label_set: LabelSet = SCANNET20) -> str:
    """Write the three-panel PNG; returns the renderer used (``open3d`` or ``matplotlib``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    keep = subsample(len(xyz))
    xyz, normals, instance, semantic = xyz[keep], normals[keep], instance[keep], semantic[keep]
    inst_rgb, sem_rgb = instance_colors(instance), semantic_colors(semantic, label_set)
    top = xyz[:, 2] <= xyz[:, 2].min() + TOP_CUT
    by_height = np.flatnonzero(top)[np.argsort(xyz[top, 2], kind="stable")]

    views = open3d_views(xyz, inst_rgb) if renderer in ("auto", "open3d") else None
    if renderer == "open3d" and views is None:
        raise RuntimeError("open3d's offscreen renderer cannot start here (no EGL / Vulkan); "
                           "use --renderer matplotlib")
    used = "open3d" if views is not None else "matplotlib"
    fig, axes = plt.subplots(1, 3, figsize=(3 * PANEL_PX / DPI, PANEL_PX / DPI + 0.6), dpi=DPI)
    if views is not None:
        for ax, img in zip(axes[:2], views):
            ax.imshow(img)
            ax.set_axis_off()
    else:
        _scatter(axes[0], xyz[:, :2], inst_rgb, by_height)
        proj, depth, eye = perspective(xyz)
        # back faces culled (as a 3D viewer does): the walls between the camera and the room,
        # whose surfaces face into the room, drop out with what is on them
        shown = np.flatnonzero(top & (np.sum(normals * (eye - xyz), axis=1) > 0))
        _scatter(axes[1], proj, inst_rgb, shown[np.argsort(-depth[shown], kind="stable")])
    _scatter(axes[2], xyz[:, :2], sem_rgb, by_height)
    if views is None:  # class names at instance centres (top view coordinates)
        inst = instance[instance >= 0]
        count = np.bincount(inst, minlength=len(labels))
        cx = np.bincount(inst, weights=xyz[instance >= 0, 0], minlength=len(labels))
        cy = np.bincount(inst, weights=xyz[instance >= 0, 1], minlength=len(labels))
        for k in np.flatnonzero(count):  # one label per instance
            axes[0].text(cx[k] / count[k], cy[k] / count[k], label_set.class_name.get(int(labels[k]), str(labels[k])),
                         fontsize=6, ha="center", va="center",
                         bbox={"fc": "white", "alpha": 0.6, "lw": 0, "pad": 0.5})
    palette = class_palette(label_set)
    present = np.flatnonzero(np.bincount(np.maximum(label_set.semantic_index(semantic), 0) + 1,
                                         minlength=label_set.num_classes + 1)[1:])[:30]  # legend: <= 30
    axes[2].legend(handles=[Patch(color=palette[c] / 255.0, label=label_set.names[c]) for c in present],
                   loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    n_inst = int(len(labels))
    axes[0].set_title(f"{n_inst} instances (top)", fontsize=9)
    axes[1].set_title("instances (perspective)", fontsize=9)
    axes[2].set_title("classes (top)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=DPI, facecolor="white")
    plt.close(fig)
    return used
