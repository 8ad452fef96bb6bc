#!/usr/bin/env python
"""The whole job on the embedded default, on the CPU: `make demo` runs this.

1. generate synthetic ScanNet-format scenes  (tools/make_synthetic.py)
2. preprocess them                            (tools/preprocess.py)
3. train                                      (tools/train.py CONFIG)
4. evaluate on the held-out val scenes, write coloured PLYs and viewer pages with GT and errors
                                              (tools/test.py --split val --ply --html)
5. predict the test scenes, export and validate a benchmark submission
                                              (tools/test.py --split test --export)
6. segment a scan given as a plain point cloud (one test scene's vertices
   and colours in its raw, unaligned frame), with a picture and a viewer page
                                              (tools/predict.py --align floor)
Each step is the command a user would run (printed before it runs) and each
is resumable: generated scenes, preprocessed files, a finished training run
and saved predictions are reused. --config configs/synthetic_margin.yaml
trains the learnable-margin baseline instead; --config
configs/synthetic200_probabilistic.yaml runs it all with the ScanNet200 label set
(rooms with extra ScanNet200 categories, in <out>/scannet200 and <out>/preprocessed200; ScanNet++'s
layout and label set with configs/synthetic_scannetpp_probabilistic.yaml, in <out>/scannetpp and
<out>/preprocessedpp).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scene_pe.util import cli  # noqa: E402


def main(argv=None) -> int:
    ap = cli.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/synthetic_probabilistic.yaml")
    ap.add_argument("--out", type=Path, default=Path("demo_output"))
    ap.add_argument("--train-scenes", type=int, default=16)
    ap.add_argument("--val-scenes", type=int, default=6)
    ap.add_argument("--test-scenes", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("overrides", nargs="*", help="key.sub=value config overrides for training/testing")
    args = ap.parse_args(argv)
    from scene_pe.commands.demo import run

    return run(args)


if __name__ == "__main__":
    sys.exit(cli.run(main))
