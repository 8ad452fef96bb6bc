"""YAML is read only through yaml.safe_load: a config that would build Python objects is refused."""

import re
from pathlib import Path

import pytest

from scene_pe.config import config_from_text, load_config
from scene_pe.util.typed_config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EVIL = "name: x\ntrain: !!python/object/apply:os.system ['touch {marker}']\n"


def test_no_unsafe_yaml_loader_in_the_repository():
    sources = [*ROOT.glob("scene_pe/**/*.py"), *ROOT.glob("tools/**/*.py"), *ROOT.glob("bench/*.py"),
               *ROOT.glob("tests/*.py")]
    unsafe = re.compile(r"yaml\.(load|unsafe_load|full_load|load_all|unsafe_load_all|full_load_all)\(|Loader\s*=")
    hits = [(p.name, m.group(0)) for p in sources if p.name != Path(__file__).name
            for m in unsafe.finditer(p.read_text())]
    assert hits == []
    assert sum("yaml.safe_load(" in p.read_text() for p in sources) >= 2  # config files, checkpoint configs


def test_a_python_tag_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(EVIL.format(marker=marker))
    with pytest.raises(ConfigError, match="evil.yaml: not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="checkpoint config: not valid YAML"):
        config_from_text(EVIL.format(marker=marker), source="checkpoint config")
    assert not marker.exists()
