"""A method registered by another installed package (entry-point group ``contrafuse.methods``)
appears in the CLI, the API and benchmark configs without editing contrafuse."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

PLUGIN = '''
import numpy as np
from contrafuse.methods import FusionMethod, register_method

@register_method("brighter")
class Brighter(FusionMethod):
    description = "per-pixel maximum of the two sources (a test plug-in)"

    def fuse_grey(self, first, second):
        return np.maximum(first, second).astype(np.float32)
'''


def _install(site: Path) -> dict:
    """A tiny distribution on ``site``: its module and a dist-info with the entry point, which
    importlib.metadata finds as it finds any installed package."""
    (site / "brighter_plugin.py").write_text(PLUGIN)
    info = site / "brighter_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brighter-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[contrafuse.methods]\nbrighter = brighter_plugin\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_an_installed_plugin_method_is_listed_and_fuses(tmp_path):
    env = _install(tmp_path)
    listed = subprocess.run([sys.executable, "-m", "contrafuse", "methods"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and "brighter" in listed.stdout and "test plug-in" in listed.stdout
    a, b = np.zeros((4, 5), np.uint8), np.full((4, 5), 200, np.uint8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    code = ("import numpy as np, contrafuse\n"
            f"out = contrafuse.fuse(np.load({str(tmp_path / 'a.npy')!r}), np.load({str(tmp_path / 'b.npy')!r}), "
            "method='brighter')\nassert abs(out - 200 / 255).max() < 1e-6\n")
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_a_broken_plugin_is_a_warning_not_a_crash(tmp_path):
    env = _install(tmp_path)
    (tmp_path / "brighter_plugin.py").write_text("raise ImportError('missing dependency')\n")
    listed = subprocess.run([sys.executable, "-m", "contrafuse", "methods"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and "gff" in listed.stdout
    assert "plug-in 'brighter'" in listed.stderr and "missing dependency" in listed.stderr
