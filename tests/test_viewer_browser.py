"""The viewer pages in a real browser: headless Debian Chromium (WebGL by SwiftShader), from file://.

Pages: tools/predict.py's NAME.html of the small trained model's scene (no GT), a generated room
with a prediction made to hold one error of each kind (GT layers), and tools/test.py --html's page.
Pixel checks ask what any correct drawing shows (colours present, share of pixels changed), never
exact pixels; every wait polls the page's own state (scene_pe/viewer/browser.py).

Skipped only where /usr/bin/chromium or /usr/bin/chromedriver is missing (tools/setup_env.sh installs
them as root). SCENE_PE_WRITE_SCREENSHOT=docs/viewer.png writes the README's picture: of
SCENE_PE_SCREENSHOT_PAGE (default: the predict page here), checked like the others.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from scene_pe.labels.label_set import SCANNET20
from scene_pe.evaluation.matching import gt_from_training_labels
from scene_pe.predict.outputs import instance_records
from scene_pe.synthetic.predictions import prediction_with_errors
from scene_pe.synthetic.scenes import generate_scene
from scene_pe.viewer import SceneView, write_viewer
from scene_pe.viewer import browser as B

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import predict as predict_tool  # noqa: E402

_spec = importlib.util.spec_from_file_location("test_tool", ROOT / "tools" / "test.py")  # not the stdlib's test
test_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(test_tool)

pytestmark = pytest.mark.skipif(B.missing() is not None, reason=str(B.missing()))
LAYERS_GT = ["input", "instances", "classes", "uncertainty", "gt", "errors"]


@pytest.fixture(scope="module")
def browser():
    with B.Browser() as b:
        yield b


@pytest.fixture(scope="module")
def predicted(overfit_run, tmp_path_factory):
    """tools/predict.py on the trained scene: (page, NAME.json)."""
    out = tmp_path_factory.mktemp("predict")
    scene = overfit_run.raw_scene
    assert predict_tool.main([str(scene), "--checkpoint", str(overfit_run.checkpoint), "--out", str(out),
                              "--threads", "1", "--no-progress", "--no-render"]) == 0
    record = json.loads((out / f"{scene.name}.json").read_text())
    assert record["viewer"]["file"] == f"{scene.name}.html" and "html" in record["seconds"]
    return out / f"{scene.name}.html", record


@pytest.fixture(scope="module")
def with_gt(tmp_path_factory):
    """A generated room and a prediction with one made error of each kind, with its GT."""
    scene = generate_scene("scene0991_00", 4, num_vertices_target=24000)
    xyz, (semantic, instance) = scene.aligned_vertices(), scene.training_labels()
    pred = prediction_with_errors(scene.scene_id, xyz, semantic, instance).pred
    path = tmp_path_factory.mktemp("gt") / "made.html"
    write_viewer(path, SceneView(scene.scene_id, xyz, pred, SCANNET20, instance_records(pred, xyz, SCANNET20),
                                 colors=scene.colors[:, :3], gt=gt_from_training_labels(semantic, instance)))
    return path, pred


def changed(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels whose colour differs by more than 24 levels in some channel."""
    return float((np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 24).mean())


def colours_shown(image: np.ndarray, colours: np.ndarray, tol: int = 12, min_pixels: int = 20) -> np.ndarray:
    """(K,) bool: which of the colours at least ``min_pixels`` pixels have (each channel within ``tol``)."""
    pixels = image.reshape(-1, 3).astype(int)
    pixels = pixels[(pixels < 245).any(axis=1)]  # not the white background
    return np.array([(np.abs(pixels - c).max(axis=1) <= tol).sum() >= min_pixels for c in colours.astype(int)])


def test_pages_load_offline_without_console_errors(browser, predicted, with_gt):
    for page in (predicted[0], with_gt[0]):
        seconds = browser.open(page)
        urls = browser.requested_urls()
        assert B.non_local(urls) == [], urls  # no network request
        assert page.resolve().as_uri() in urls
        assert browser.console() == []
        print(f"{page.name}: ready after {seconds:.1f} s, {browser.js('return window.scenePe.timings')}")


def test_the_canvas_shows_the_instance_colours(browser, predicted):
    page, record = predicted
    browser.open(page)
    image = browser.screenshot()
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert (image < 245).any(axis=2).mean() > 0.1  # not blank
    assert browser.js("return document.querySelector('#layers input[value=instances]').checked;")
    palette = np.asarray(next(L for L in json_data(browser)["layers"] if L["key"] == "instances")["palette"])
    big = [r["id"] for r in record["instances"] if r["num_vertices"] >= 0.02 * record["num_vertices"]]
    assert len(big) >= 3
    shown = colours_shown(image, palette[np.asarray(big) + 1])
    print(f"{shown.sum()} of the {len(big)} largest instances' colours shown")
    assert shown.sum() >= max(3, len(big) // 2), (shown, big)


def json_data(browser) -> dict:
    return json.loads(browser.js("return document.getElementById('scene-data').textContent;"))


def test_switching_layers_changes_the_pixels(browser, with_gt):
    browser.open(with_gt[0])
    assert [L["key"] for L in json_data(browser)["layers"]] == LAYERS_GT
    shots = {}
    for key in LAYERS_GT:
        browser.set_layer(key)
        shots[key] = browser.screenshot()
        legend = browser.js("return document.getElementById('legend').textContent;")
        assert legend, key
    print({key: round(changed(shots["instances"], shots[key]), 4) for key in LAYERS_GT})  # the margins (-rA)
    for key in ("input", "classes", "uncertainty", "errors"):
        assert changed(shots["instances"], shots[key]) > 0.05, key
    # matched GT instances keep their prediction's colour: only the made errors differ
    assert 0.002 < changed(shots["instances"], shots["gt"]) < changed(shots["instances"], shots["errors"])
    errors = json_data(browser)["layers"][-1]
    shown = colours_shown(shots["errors"], np.asarray(errors["palette"])[2:])  # the five kinds but "not scored"
    assert shown.all(), shown


def test_the_instance_list_matches_the_json(browser, predicted):
    page, record = predicted
    browser.open(page)
    rows = browser.js("return [...document.querySelectorAll('#instances tbody tr')].map("
                      "tr => [...tr.children].map(td => td.textContent));")
    want = [[str(r["id"]), r["class"], f"{r['confidence']:.3f}", f"{r['num_vertices']:,}",
             f"{r['mean_uncertainty']:.3f}"] for r in record["instances"]]
    assert rows == want


def hover(browser, kind: str, id_: int) -> dict | None:
    """The mouse over a point of the object that is in front; what the page then calls hovered
    (None: no part of the object is in front)."""
    from selenium.webdriver.common.action_chains import ActionChains

    point = browser.js("return window.scenePe.visiblePoint(arguments[0], arguments[1]);", kind, id_)
    if point is None:
        return None
    x, y = point
    canvas = browser.driver.find_element("css selector", "#view canvas")
    r = browser.js("const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height];",
                   canvas)
    offset = (int(round(x - r[0] - r[2] / 2)), int(round(y - r[1] - r[3] / 2)))
    ActionChains(browser.driver).move_to_element_with_offset(canvas, *offset).perform()
    return browser.wait("window.scenePe.hovered", 60, "hover")


@pytest.mark.parametrize("kind", ["instance", "gt"])
def test_hover_and_click_describe_the_object(browser, with_gt, kind):
    from selenium.webdriver.common.action_chains import ActionChains

    browser.open(with_gt[0])
    data = json_data(browser)
    if kind == "gt":
        browser.set_layer("gt")
    rows = data["instances"] if kind == "instance" else data["gt_instances"]
    target = max(rows, key=lambda r: r["num_vertices"])
    hovered = hover(browser, kind, target["id"])
    assert hovered and hovered["kind"] == kind and hovered["id"] == target["id"]
    ActionChains(browser.driver).click().perform()
    selected = browser.wait("window.scenePe.selected", 60, "click")
    assert selected == {"kind": kind, "id": target["id"]}
    info = browser.js("return document.getElementById('info').textContent;")
    assert target["class"] in info and f"{target['num_vertices']:,} vertices" in info
    if kind == "instance":
        assert f"confidence {target['confidence']:.3f}" in info and "mean uncertainty" in info
        g = data["gt_instances"][target["gt"]]
        assert f"matched GT instance {g['id']} ({g['class']}), IoU {target['iou']:.3f}" in info
    else:
        assert f"best prediction {target['pred']}, IoU {target['iou']:.3f}" in info
    table = "instances" if kind == "instance" else "gt-instances"
    assert browser.js(f"return document.querySelector('#{table} tr.selected').dataset.id;") == str(target["id"])
    assert browser.console() == []


def test_test_tool_writes_a_page_per_scene_with_gt(browser, overfit_run, small_dataset, tmp_path):
    out = tmp_path / "test"
    assert test_tool.main([str(ROOT / "configs" / "synthetic_probabilistic.yaml"), f"data.root={small_dataset}",
                           f"run_dir={tmp_path}", "data.voxel.voxel_size=0.06", "--checkpoint",
                           str(overfit_run.checkpoint), "--split", "val", "--out", str(out), "--html",
                           "--no-progress"]) == 0
    scenes = (small_dataset / "splits" / "val.txt").read_text().split()
    assert sorted(p.stem for p in (out / "html").glob("*.html")) == sorted(scenes)
    browser.open(out / "html" / f"{scenes[0]}.html")
    data = json_data(browser)
    assert [L["key"] for L in data["layers"]] == LAYERS_GT and data["has_gt"]
    assert browser.console() == [] and B.non_local(browser.requested_urls()) == []


def test_the_readme_screenshot_shows_a_hovered_instance(browser, request, tmp_path):
    """The README's picture, taken here: into tmp_path, or SCENE_PE_WRITE_SCREENSHOT when set."""
    page = Path(os.environ.get("SCENE_PE_SCREENSHOT_PAGE") or request.getfixturevalue("predicted")[0])
    browser.open(page)
    assert browser.console() == [] and B.non_local(browser.requested_urls()) == []
    assert (browser.screenshot() < 245).any(axis=2).mean() > 0.1
    data = json_data(browser)
    # the mouse over the largest instance in view
    hovered = any(hover(browser, "instance", r["id"])
                  for r in sorted(data["instances"], key=lambda r: -r["num_vertices"]))
    assert hovered
    out = ROOT / os.environ["SCENE_PE_WRITE_SCREENSHOT"] if os.environ.get("SCENE_PE_WRITE_SCREENSHOT") \
        else tmp_path / "viewer.png"
    browser.save_screenshot(out)
    assert out.stat().st_size > 10_000
