"""scene_pe: 3D instance segmentation of ScanNet scenes with probabilistic embeddings.

MinkowskiEngine is not listed in install_requires: PyPI only has its 2021
sdist, which does not build on current toolchains. tools/setup_env.sh (or
`make setup`) builds it from that sdist with the project's patches.
"""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = {}
exec((here / "scene_pe" / "__init__.py").read_text(), version)

setup(
    name="scene_pe",
    version=version["__version__"],
    description="ScanNet 3D instance segmentation with probabilistic embeddings (Zhang & Wonka, CVPR 2021)",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["scene_pe", "scene_pe.*"]),
    # the viewer's script, style and npm sources (js/three.bundle.js is built there by setup)
    package_data={"scene_pe.viewer": ["js/*.js", "js/*.css", "js/*.json"]},
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24,<2",
        "scipy>=1.10",
        "plyfile>=1.0",
        "open3d>=0.18",
        "pyyaml>=6.0",
        "tqdm>=4.60",
        "tensorboard>=2.14",
        "matplotlib>=3.7",
        "trimesh>=4.0",
        "numba>=0.59",
    ],
    extras_require={"test": ["pytest>=7.4", "hypothesis>=6.80"]},
    license="MIT",
)
