"""Ablations: every config x seed trained on the same data with the same budget, evaluated alike.

``tools/ablate.py`` is the command line; this module plans, runs and resumes.
Layout under the output folder DIR:

    DIR/runs/<config stem>/seed<k>/   one tools/train.py run (config.yaml, train.log, last.pth, ...)
        ablate.log                    output of its training and evaluation subprocesses
        metrics.json                  evaluation of its final model; written last: the run is done
    DIR/results.json, results.md, results.png      (scene_pe.experiments.ablation_report)

Rules (docs/method.md, "Ablations"):
- Seeds 0..N-1 (``train.seed``). Every config must read the same data
  (``data.root``, ``train_split``, ``val_split``).
- Budget, one of: ``epochs`` E sets ``train.epochs = E`` and moves each LR
  milestone m to round(m * E / epochs of the config), at least 1, so the
  schedule keeps its shape; ``minutes`` M sets ``train.max_minutes = M``
  (training time, validation excluded, resumable; the config's epochs remain
  an upper bound).
- The FINAL model (last.pth) is evaluated on ``data.val_split`` with the
  validation code (engine.evaluate.evaluate_loader), not best.pth: best.pth is
  chosen on that same split, so its score would be optimistically biased.
  Every scalar the evaluation returns is kept (AP, AP50, AP25, mIoU, ...), and
  where the run fitted its thresholds (``train.fit``) the report half's AP /
  AP50 / AP25 at them (``fitted_report_*``): the figures both heads are compared on.
- Each run is its own subprocess (tools/train.py, then the evaluation), with
  OMP_NUM_THREADS=1 unless the environment sets it; ``jobs`` runs at a time.
- Resume: a run with metrics.json is reused; one with last.pth is continued
  with ``--resume`` (its budget too); any other is trained from scratch. A run
  folder whose config.yaml differs from what this invocation would train is an
  error, so that budgets or configs never mix in one table. A failed run is
  reported at the end; the others still complete.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from scene_pe.util.io import write_text_atomic

ROOT = Path(__file__).resolve().parents[2]
TRAIN_TOOL = ROOT / "tools" / "train.py"
# Keys the tool sets itself: a user override of one would silently break the rules above.
CONTROLLED = ("name", "run_dir", "train.seed", "train.epochs", "train.lr_milestones", "train.max_minutes")


class AblationError(Exception):
    """A problem with the request (config, option, data, output folder): one line for the user."""


@dataclass(frozen=True)
class RunSpec:
    config: Path               # absolute path of the config file
    stem: str                  # its file name without .yaml: the row of the table
    seed: int
    overrides: tuple[str, ...]  # passed to tools/train.py after the config
    path: Path                 # DIR/runs/<stem>/seed<k>
    resolved: dict             # the resolved config the run must have (without run_dir)

    @property
    def label(self) -> str:
        return f"{self.stem}/seed{self.seed}"


def scale_milestones(milestones: list[int], epochs: int, new_epochs: int) -> list[int]:
    """LR milestones moved proportionally to a new number of epochs (nearest epoch, >= 1).

    Milestones that collapse onto one epoch are kept (MultiStepLR then applies
    the decay as often as they occur), so the schedule's total decay is unchanged.
    """
    return [max(1, int(math.floor(m * new_epochs / epochs + 0.5))) for m in milestones]


def budget_overrides(train_cfg, epochs: int | None, minutes: float | None) -> list[str]:
    """Overrides giving a run the ablation's budget; ``train_cfg`` is the config's train section.

    Training never validates (train.val_every=0): the ablation evaluates the
    final model itself, and a validation pass inside training would only cost time.
    """
    if (epochs is None) == (minutes is None):
        raise AblationError("give exactly one budget: --epochs or --minutes")
    if epochs is not None:
        ms = scale_milestones(list(train_cfg.lr_milestones), train_cfg.epochs, epochs)
        return [f"train.epochs={epochs}", f"train.lr_milestones=[{', '.join(map(str, ms))}]",
                "train.max_minutes=0", "train.val_every=0"]
    return [f"train.max_minutes={minutes}", "train.val_every=0"]


def _comparable(cfg_dict: dict) -> dict:
    # run_dir and name only say where the run lives; a moved DIR is still the same run
    return {k: v for k, v in cfg_dict.items() if k not in ("run_dir", "name")}


def plan(configs: list[Path], seeds: int, out: Path, overrides: list[str], epochs: int | None = None,
         minutes: float | None = None) -> list[RunSpec]:
    """Check the request and list its runs, config-major; raises AblationError."""
    from scene_pe.config import load_config
    from scene_pe.data.dataset import preprocessed_split
    from scene_pe.util.typed_config import ConfigError, to_dict

    if seeds < 1:
        raise AblationError(f"--seeds must be >= 1, not {seeds}")
    for o in overrides:
        key = o.split("=", 1)[0].strip()
        if key in CONTROLLED:
            raise AblationError(f"override {o!r}: {key} is set by the tool (--seeds, --epochs/--minutes, --out)")
    stems: dict[str, Path] = {}
    data = None
    specs = []
    out = out.resolve()
    for path in configs:
        if not path.is_file():
            raise AblationError(f"config file {path} does not exist")
        path = path.resolve()
        if path.stem in stems:
            raise AblationError(f"two configs named {path.stem!r} ({stems[path.stem]}, {path}): rows need "
                                "distinct file names")
        stems[path.stem] = path
        try:
            base = load_config(path, overrides)
        except ConfigError as e:
            raise AblationError(str(e)) from None
        root = Path(base.data.root)
        if not root.is_dir():
            raise AblationError(f"data root {root} (data.root of {path.name}) does not exist")
        for split in (base.data.train_split, base.data.val_split):
            try:
                preprocessed_split(root, split)
            except FileNotFoundError as e:
                raise AblationError(str(e)) from None
        here = (str(root.resolve()), base.data.train_split, base.data.val_split)
        if data is not None and here != data[1]:
            raise AblationError(f"{path.name} reads other data than {data[0]} (data.root, train_split, "
                                "val_split must be equal: the runs are compared)")
        data = data or (path.name, here)
        budget = budget_overrides(base.train, epochs, minutes)
        for k in range(seeds):
            run_path = out / "runs" / path.stem / f"seed{k}"
            extra = (*overrides, *budget, f"train.seed={k}", f"run_dir={run_path.parent}", f"name={run_path.name}")
            try:
                resolved = _comparable(to_dict(load_config(path, list(extra))))
            except ConfigError as e:
                raise AblationError(str(e)) from None
            spec = RunSpec(path, path.stem, k, tuple(extra), run_path, resolved)
            check_existing(spec)
            specs.append(spec)
    return specs


def first_difference(saved, wanted, where: str = "") -> str | None:
    """The first key whose value in ``saved`` differs from ``wanted``, or None.

    Keys that only ``wanted`` has are not differences: they were added to the
    code (with their defaults) after the run was made.
    """
    if isinstance(saved, dict) and isinstance(wanted, dict):
        for k, v in saved.items():
            key = f"{where}.{k}" if where else k
            if k not in wanted:
                return key
            found = first_difference(v, wanted[k], key)
            if found:
                return found
        return None
    return None if saved == wanted else where


def check_existing(spec: RunSpec) -> None:
    """A run folder from an earlier invocation must hold this very run."""
    saved = spec.path / "config.yaml"
    if not saved.exists():
        return
    key = first_difference(_comparable(yaml.safe_load(saved.read_text()) or {}), spec.resolved)
    if key is not None:
        raise AblationError(f"{spec.path} holds a run made with another {key} than this request; "
                            "use another --out or delete that folder")


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # several runs share the cores (docs/method.md)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


class RunFailed(Exception):
    pass


def run_one(spec: RunSpec, env: dict[str, str]) -> str:
    """Train (or resume) and evaluate one run unless it is done; returns what was done."""
    if (spec.path / "metrics.json").exists():
        return "reused"
    spec.path.mkdir(parents=True, exist_ok=True)
    resume = (spec.path / "last.pth").exists()
    log_path = spec.path / "ablate.log"
    train = [sys.executable, str(TRAIN_TOOL), str(spec.config), *spec.overrides, "--no-progress"]
    evaluate = [sys.executable, "-m", "scene_pe.experiments.ablation", "evaluate", str(spec.path),
                str(spec.config), spec.stem]
    with open(log_path, "a") as log:
        for what, cmd in (("training", train + (["--resume"] if resume else [])), ("evaluation", evaluate)):
            log.write(f"\n$ {' '.join(cmd)}\n")
            log.flush()
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
                                ).returncode
            if rc != 0:
                raise RunFailed(f"{what} exited with status {rc}; see {log_path}")
    return "resumed" if resume else "trained"


def run_all(specs: list[RunSpec], jobs: int = 1, echo: Callable[[str], None] = print
            ) -> dict[str, str]:
    """Run every spec, ``jobs`` at a time; returns {label: error} of the failed ones."""
    env = subprocess_env()
    lock = threading.Lock()
    failed: dict[str, str] = {}
    done = [0]

    def work(spec: RunSpec) -> None:
        start = time.perf_counter()
        try:
            what = run_one(spec, env)
            rec = read_record(spec)
            note = f"{what}: AP {fmt(rec['metrics'].get('ap'))}  AP50 {fmt(rec['metrics'].get('ap50'))}"
        except Exception as e:  # noqa: BLE001 - one run's failure must not stop the others
            failed[spec.label] = str(e) if isinstance(e, RunFailed) else f"{type(e).__name__}: {e}"
            note = f"FAILED: {failed[spec.label]}"
        with lock:
            done[0] += 1
            echo(f"[{done[0]}/{len(specs)}] {spec.label} {note} ({time.perf_counter() - start:.0f} s)")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(work, specs))
    return failed


def fmt(v) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def read_record(spec: RunSpec) -> dict:
    return json.loads((spec.path / "metrics.json").read_text())


def scalars(result: dict) -> dict[str, float | None]:
    """The scalar entries of an evaluation result (any key, e.g. an uncertainty AUROC); NaN -> None."""
    out = {}
    for k, v in result.items():
        if isinstance(v, numbers.Real) and not isinstance(v, bool):
            out[k] = None if math.isnan(float(v)) else float(v)
    return out


def evaluate_run(run_path: Path) -> dict:
    """Evaluate <run_path>/last.pth on its config's val split, as validation does."""
    from scene_pe.data.dataset import preprocessed_split
    from scene_pe.util import distributed as D
    from scene_pe.train.checkpoint import load_trained_run
    from scene_pe.inference.evaluate import evaluate_loader
    from scene_pe.inference.fitting import RECORD_KEY
    from scene_pe.model.precision import amp_dtype

    _, _, device = D.init_distributed()
    cfg, model, ck = load_trained_run(run_path, device)
    start = time.perf_counter()
    result = evaluate_loader(model, cfg, preprocessed_split(Path(cfg.data.root), cfg.data.val_split), device,
                             progress=False, amp_dtype=amp_dtype(cfg.train, device))
    fitted = ck.get(RECORD_KEY)  # train.fit's thresholds: their figures on the report half (no choice saw it)
    if fitted and fitted.get("rows"):
        report = fitted["rows"][fitted["chosen"]]["report"]
        result.update({f"fitted_report_{k}": report[k] for k in ("ap", "ap50", "ap25")})
    return {"seed": cfg.train.seed, "split": cfg.data.val_split, "checkpoint": "last.pth",
            "steps": int(ck["step"]), "epochs": int(ck["epoch"]),
            "train_minutes": ck["elapsed_s"] / 60.0 if "elapsed_s" in ck else None,
            "eval_seconds": time.perf_counter() - start, "metrics": scalars(result)}


def _evaluate_main(argv: list[str]) -> int:
    run_path, config, stem = Path(argv[0]), argv[1], argv[2]
    record = {"config": config, "name": stem, **evaluate_run(run_path)}
    write_text_atomic(run_path / "metrics.json", json.dumps(record, indent=1) + "\n")
    return 0


def run_ablation(configs: list[Path], seeds: int, out: Path, overrides: list[str], *, epochs: int | None = None,
                 minutes: float | None = None, jobs: int = 1, echo: Callable[[str], None] = print) -> int:
    """The whole ablation; returns the exit status (1 if any run failed). Raises AblationError."""
    from scene_pe.experiments.ablation_report import write_results

    if jobs < 1:
        raise AblationError(f"--jobs must be >= 1, not {jobs}")
    specs = plan(configs, seeds, out, overrides, epochs, minutes)
    budget = {"epochs": epochs} if epochs is not None else {"minutes": minutes}
    echo(f"{len(specs)} runs ({len(configs)} configs x {seeds} seeds), budget {budget}, {jobs} at a time; "
         f"logs: {out / 'runs'}/<config>/seed<k>/ablate.log")
    failed = run_all(specs, jobs, echo)
    records = []
    for spec in specs:
        if spec.label in failed:
            records.append({"config": str(spec.config), "name": spec.stem, "seed": spec.seed,
                            "status": "failed", "error": failed[spec.label]})
        elif (spec.path / "metrics.json").exists():
            records.append({**read_record(spec), "status": "done"})
    paths = write_results(out.resolve(), list(dict.fromkeys(s.stem for s in specs)), records,
                          {"budget": budget, "seeds": seeds, "overrides": list(overrides)})
    echo("results: " + ", ".join(str(p) for p in paths))
    for label, err in failed.items():
        echo(f"FAILED {label}: {err}")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "evaluate":
        sys.exit(_evaluate_main(sys.argv[2:]))
    sys.exit("usage: python -m scene_pe.experiments.ablation evaluate RUN_DIR CONFIG NAME (used by tools/ablate.py)")
