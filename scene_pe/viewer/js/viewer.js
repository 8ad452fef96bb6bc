/* scene_pe's HTML viewer: the page's own script, embedded by scene_pe/viewer/page.py after the three.js
 * bundle (window.SCENE_PE_THREE). It reads the JSON of #scene-data (scene_pe/viewer/layers.py), draws
 * the points with three.js (one Points object; a layer switch swaps its colour buffer) and builds the
 * side panel. window.scenePe is its state, which the browser tests read: ready, error, frame (frames
 * drawn), layer, selected / hovered ({kind: "instance" | "gt", id}), timings, and a few helpers. */
(function () {
  "use strict";
  const T = window.SCENE_PE_THREE;
  const state = window.scenePe = {ready: false, error: null, frame: 0, layer: null, selected: null, hovered: null,
                                  timings: {}};
  const t0 = performance.now();

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "style") node.style.cssText = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  const fmt = (x, d = 3) => (x === null || x === undefined ? "n/a" : Number(x).toFixed(d));
  const count = (x) => Number(x).toLocaleString("en-US");
  const rgb = (p) => `rgb(${p[0]},${p[1]},${p[2]})`;

  function bytes(b64) {
    const s = atob(b64), out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  function typed(enc) {
    const b = bytes(enc.data).buffer;
    return enc.dtype === "u1" ? new Uint8Array(b) : enc.dtype === "u2" ? new Uint16Array(b) : new Uint32Array(b);
  }

  function fail(e) {
    state.error = String((e && e.message) || e);
    console.error("scene_pe viewer: " + state.error);
    document.getElementById("view").append(el("p", {class: "error"}, "The viewer failed: " + state.error));
    document.body.dataset.ready = "error";
  }

  try {
    main(JSON.parse(document.getElementById("scene-data").textContent));
  } catch (e) {
    fail(e);
  }

  function main(data) {
    const n = data.num_drawn;
    // ---------------------------------------------------------------- points, centred on their box
    const q = typed(data.points.q), pos = new Float32Array(3 * n);
    const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    for (let i = 0; i < 3 * n; i++) {
      const a = i % 3, v = data.points.lo[a] + q[i] * data.points.step[a];
      pos[i] = v;
      if (v < lo[a]) lo[a] = v;
      if (v > hi[a]) hi[a] = v;
    }
    const centre = [0, 1, 2].map((a) => (lo[a] + hi[a]) / 2);
    for (let i = 0; i < 3 * n; i++) pos[i] -= centre[i % 3];
    const radius = Math.max(1e-3, Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / 2);

    const layers = {};
    for (const L of data.layers) {
      layers[L.key] = L;
      if (L.values) L.v = typed(L.values);
      if (L.palette) L.flat = Uint8Array.from(L.palette.flat());
    }
    function colours(L) {
      if (L.cache) return L.cache;
      let out;
      if (L.rgb) out = bytes(L.rgb);
      else {
        out = new Uint8Array(3 * n);
        for (let i = 0; i < n; i++) {
          const p = 3 * L.v[i];
          out[3 * i] = L.flat[p]; out[3 * i + 1] = L.flat[p + 1]; out[3 * i + 2] = L.flat[p + 2];
        }
      }
      return (L.cache = out);
    }
    const objectLayer = (kind) => layers[kind === "gt" ? "gt" : "instances"];
    const pickKind = () => (state.layer === "gt" ? "gt" : "instance");
    state.timings.decode_ms = performance.now() - t0;

    // ---------------------------------------------------------------- three.js scene
    const view = document.getElementById("view");
    const renderer = new T.WebGLRenderer({antialias: false, preserveDrawingBuffer: true});
    renderer.outputColorSpace = T.LinearSRGBColorSpace;  // the palettes' colours, unconverted
    renderer.setPixelRatio(window.devicePixelRatio || 1);
    view.append(renderer.domElement);
    const scene = new T.Scene();
    scene.background = new T.Color(0xffffff);
    const camera = new T.PerspectiveCamera(45, 1, radius / 200, radius * 20);
    camera.up.set(0, 0, 1);
    const geometry = new T.BufferGeometry();
    geometry.setAttribute("position", new T.BufferAttribute(pos, 3));
    const colour = new T.BufferAttribute(new Uint8Array(3 * n), 3, true);
    geometry.setAttribute("color", colour);
    const material = new T.PointsMaterial({size: n > 100000 ? 2 : 3, sizeAttenuation: false, vertexColors: true});
    const points = new T.Points(geometry, material);
    scene.add(points);
    const controls = new T.OrbitControls(camera, renderer.domElement);
    controls.addEventListener("change", render);

    function render() {
      renderer.render(scene, camera);
      state.frame += 1;
    }
    function resetView() {  // from a raised corner, the whole scan in view
      const az = -55 * Math.PI / 180, elev = 55 * Math.PI / 180;
      const dist = 1.05 * radius / Math.sin(camera.fov * Math.PI / 360);
      camera.position.set(dist * Math.cos(elev) * Math.cos(az), dist * Math.cos(elev) * Math.sin(az),
                          dist * Math.sin(elev));
      controls.target.set(0, 0, 0);
      controls.update();
    }
    function resize() {
      const w = Math.max(1, view.clientWidth), h = Math.max(1, view.clientHeight);
      renderer.setSize(w, h);
      camera.aspect = w / h;
      camera.updateProjectionMatrix();
      render();
    }
    function paint() {  // the layer's colours; with a selection, everything else washed out
      const base = colours(layers[state.layer]);
      let out = base;
      if (state.selected) {
        const ids = objectLayer(state.selected.kind).v, want = state.selected.id + 1;
        out = new Uint8Array(base.length);
        for (let i = 0; i < n; i++) {
          const keep = ids[i] === want;
          for (let c = 3 * i; c < 3 * i + 3; c++) out[c] = keep ? base[c] : 255 - (((255 - base[c]) * 3) >> 3);
        }
      }
      colour.array = out;
      colour.needsUpdate = true;
      render();
    }

    // ---------------------------------------------------------------- picking
    const raycaster = new T.Raycaster(), ndc = new T.Vector2();
    function pickAt(x, y) {  // client coordinates -> index of the nearest drawn point under them, or null
      const r = renderer.domElement.getBoundingClientRect();
      ndc.set(((x - r.left) / r.width) * 2 - 1, -((y - r.top) / r.height) * 2 + 1);
      const perPixel = 2 * camera.position.distanceTo(controls.target) * Math.tan(camera.fov * Math.PI / 360) /
        r.height;
      raycaster.params.Points.threshold = Math.max(1.5 * data.spacing, perPixel * material.size);
      raycaster.setFromCamera(ndc, camera);
      const hits = raycaster.intersectObject(points, false);
      return hits.length ? hits[0].index : null;
    }
    function objectAt(i) {
      if (i === null) return null;
      const kind = pickKind(), id = objectLayer(kind).v[i] - 1;
      return id < 0 ? null : {kind, id, point: i};
    }

    // ---------------------------------------------------------------- side panel
    const side = document.getElementById("side");
    side.append(el("h1", {}, data.title), el("p", {class: "budget", id: "budget"}, data.budget));
    const radios = el("div", {class: "layers", id: "layers"});
    for (const L of data.layers) {
      radios.append(el("label", {}, el("input", {type: "radio", name: "layer", value: L.key,
                                                 onchange: () => setLayer(L.key)}), " " + L.label));
    }
    const legend = el("div", {class: "legend", id: "legend"});
    const sizeInput = el("input", {type: "range", min: "1", max: "10", step: "1", value: String(material.size),
                                   oninput: () => { material.size = Number(sizeInput.value); render(); }});
    const heights = (i) => pos[3 * i + 2];
    const cutLabel = el("span", {});
    const cutInput = el("input", {type: "range", min: "0", max: "1000", step: "1", value: "1000", oninput: cut});
    function cut() {  // points are sorted by height: the ones kept are a prefix
      const z = lo[2] - centre[2] + (hi[2] - lo[2]) * Number(cutInput.value) / 1000;
      let a = 0, b = n;
      while (a < b) { const m = (a + b) >> 1; if (heights(m) <= z) a = m + 1; else b = m; }
      geometry.setDrawRange(0, a);
      cutLabel.textContent = Number(cutInput.value) === 1000 ? "all" : `up to ${fmt(z - lo[2] + centre[2], 2)} m`;
      render();
    }
    const info = el("div", {class: "info", id: "info"}, "Hover over or click a point.");
    const controlsBox = el("div", {class: "controls"},
      el("label", {}, "point size ", sizeInput), el("label", {}, "height ", cutInput, " ", cutLabel),
      el("button", {type: "button", onclick: () => { resetView(); }}, "reset view"));
    side.append(radios, legend, controlsBox, info);
    side.append(el("h2", {}, `Instances (${data.instances.length})`), table("instances", data.instances,
      ["id", "class", "conf.", "vertices", "unc."].concat(data.has_gt ? ["GT", "IoU"] : []),
      (r) => [r.id, r.class, fmt(r.confidence), count(r.num_vertices), fmt(r.mean_uncertainty)].concat(
        data.has_gt ? [r.gt === null ? "none" : r.gt, fmt(r.iou, 2)] : []), "instance"));
    if (data.has_gt) {
      side.append(el("h2", {}, `GT instances (${data.gt_instances.length})`), table("gt-instances",
        data.gt_instances, ["id", "class", "vertices", "pred.", "IoU"],
        (r) => [r.id, r.class, count(r.num_vertices), r.pred === null ? "none" : r.pred, fmt(r.iou, 2)], "gt"));
    }
    for (const note of data.notes) side.append(el("p", {class: "note"}, note));

    function table(id, rows, head, cells, kind) {
      const body = el("tbody", {});
      for (const r of rows) {
        body.append(el("tr", {"data-id": String(r.id), onclick: () => select({kind, id: r.id})},
                       ...cells(r).map((c) => el("td", {}, String(c)))));
      }
      return el("table", {id, class: "objects"}, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
                body);
    }
    function describe(obj) {
      if (!obj) return "Hover over or click a point.";
      const lines = [];
      if (obj.kind === "instance") {
        const r = data.instances.find((x) => x.id === obj.id);
        lines.push(`Instance ${r.id}: ${r.class}`, `confidence ${fmt(r.confidence)} · ${count(r.num_vertices)} ` +
                   `vertices · mean uncertainty ${fmt(r.mean_uncertainty)}`);
        if (data.has_gt) {
          const g = r.gt === null ? null : data.gt_instances[r.gt];
          lines.push(g ? `matched GT instance ${g.id} (${g.class}), IoU ${fmt(r.iou, 3)}`
                       : "no GT instance of its class overlaps it");
        }
      } else {
        const g = data.gt_instances[obj.id];
        lines.push(`GT instance ${g.id}: ${g.class}`, `${count(g.num_vertices)} vertices · ` +
                   (g.pred === null ? "no prediction of its class overlaps it"
                                    : `best prediction ${g.pred}, IoU ${fmt(g.iou, 3)}`));
      }
      if (obj.point !== undefined) lines.push("this point: " + pointText(obj.point));
      return lines.join("\n");
    }
    function pointText(i) {
      const parts = [];
      for (const key of ["classes", "uncertainty", "errors"]) {
        const L = layers[key];
        if (!L) continue;
        const v = L.v[i];
        if (key === "uncertainty") {
          const c = L.colorbar;
          parts.push(v >= 255 ? "uncertainty n/a" : `uncertainty ≈ ${fmt(c.lo + (v + 0.5) / 255 * (c.hi - c.lo))}`);
        } else {
          parts.push(key === "errors" ? `error: ${L.labels[v]}` : `class ${L.labels[v]}`);
        }
      }
      return parts.join(" · ");
    }
    function showInfo() {
      info.textContent = describe(state.hovered || state.selected);
      info.classList.toggle("pinned", !state.hovered && !!state.selected);
    }
    function select(obj) {
      state.selected = obj ? {kind: obj.kind, id: obj.id} : null;
      for (const tr of side.querySelectorAll("tr.selected")) tr.classList.remove("selected");
      if (obj) {
        const row = side.querySelector(`#${obj.kind === "gt" ? "gt-instances" : "instances"} tr[data-id="${obj.id}"]`);
        if (row) { row.classList.add("selected"); row.scrollIntoView({block: "nearest"}); }
      }
      state.hovered = null;
      info.textContent = describe(obj);
      info.classList.toggle("pinned", !!obj);
      paint();
    }
    function setLayer(key) {
      if (!layers[key]) throw new Error("no layer " + key);
      state.layer = key;
      for (const r of radios.querySelectorAll("input")) r.checked = r.value === key;
      const L = layers[key];
      legend.replaceChildren();
      if (L.note) legend.append(el("p", {}, L.note));
      if (L.legend) {
        for (const e of L.legend) {
          legend.append(el("div", {class: "entry"}, el("span", {class: "swatch", style: "background:" + rgb(e.rgb)}),
                           `${e.label} (${count(e.count)})`));
        }
      }
      if (L.colorbar) {
        const c = L.colorbar;
        legend.append(el("div", {class: "colorbar", style: `background:linear-gradient(to right,${c.rgb.map(rgb)})`}),
                      el("div", {class: "range"}, el("span", {}, fmt(c.lo)), el("span", {}, fmt(c.hi))),
                      el("p", {}, `${c.definition || "uncertainty"}; 2nd to 98th percentile, clipped outside`));
      }
      paint();
      return state.frame;
    }

    // ---------------------------------------------------------------- pointer
    const canvas = renderer.domElement;
    let last = null, down = null, pending = false;
    canvas.addEventListener("pointermove", (e) => {
      last = [e.clientX, e.clientY];
      if (pending || e.buttons) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        state.hovered = objectAt(pickAt(last[0], last[1]));
        showInfo();
      });
    });
    canvas.addEventListener("pointerleave", () => { state.hovered = null; showInfo(); });
    canvas.addEventListener("pointerdown", (e) => { down = [e.clientX, e.clientY]; });
    canvas.addEventListener("pointerup", (e) => {
      if (down && Math.hypot(e.clientX - down[0], e.clientY - down[1]) < 5) {
        const obj = objectAt(pickAt(e.clientX, e.clientY));
        select(obj);
        if (obj) info.textContent = describe(obj);
      }
      down = null;
    });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") select(null); });
    window.addEventListener("resize", resize);

    // ---------------------------------------------------------------- helpers for tests, and go
    state.setLayer = setLayer;
    state.select = select;
    state.pickAt = pickAt;
    state.visiblePoint = function (kind, id, tries = 200) {  // client (x, y) inside the object, in front
      const ids = objectLayer(kind).v, want = id + 1, r = canvas.getBoundingClientRect(), p = new T.Vector3();
      const members = [];
      for (let i = 0; i < n; i++) if (ids[i] === want) members.push(i);
      const stride = Math.max(1, Math.floor(members.length / tries));
      for (let k = 0; k < members.length; k += stride) {
        const i = members[k];
        p.fromBufferAttribute(geometry.attributes.position, i).project(camera);
        const x = r.left + (p.x + 1) / 2 * r.width, y = r.top + (1 - p.y) / 2 * r.height;
        if (x < r.left + 2 || x > r.right - 2 || y < r.top + 2 || y > r.bottom - 2) continue;
        const probes = [[0, 0], [-2, -2], [2, -2], [-2, 2], [2, 2]];  // the object all around: no edge
        if (probes.every(([dx, dy]) => { const hit = pickAt(x + dx, y + dy); return hit !== null && ids[hit] === want; }))
          return [x, y];
      }
      return null;
    };
    resetView();
    resize();
    cut();
    setLayer(layers.instances ? "instances" : data.layers[0].key);
    const gl = renderer.getContext();
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));  // waits for the frame
    state.timings.first_frame_ms = performance.now() - t0;
    state.timings.since_navigation_ms = performance.now();
    state.ready = true;
    document.body.dataset.ready = "1";
  }
})();
