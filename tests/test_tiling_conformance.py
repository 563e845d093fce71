"""DOTA_devkit ImgSplit.py conformance: every reference setting in ../shared/data/*_split_ref is reproduced exactly
(same tile names, same label bytes, same decoded pixels)."""
import hashlib
import re

import cv2
import pytest
from click.testing import CliRunner

from dsprep.cli import main
from conftest import SHARED


def _settings():
    if not SHARED.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"no shared data at {SHARED}"))]
    out = []
    for ref in sorted(SHARED.glob("*_split_ref")):
        for setting in sorted(p for p in ref.iterdir() if p.is_dir()):
            out.append(pytest.param(ref, setting, id=f"{ref.name}/{setting.name}"))
    return out


def _args(name):
    m = re.fullmatch(r"gap(\d+)_sub(\d+)(?:_rate([\d.]+))?", name)
    assert m, name
    args = ["--gap", m.group(1), "--size", m.group(2)]
    if m.group(3):
        args += ["--rate", m.group(3)]
    return args


@pytest.mark.parametrize("ref, setting", _settings())
def test_matches_devkit(ref, setting, tmp_path):
    source = SHARED / ref.name.replace("_split_ref", "")
    out = tmp_path / "tiles"
    res = CliRunner().invoke(main, ["tile-dota", str(source), "--out", str(out), "--quiet"] + _args(setting.name),
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    expected = {}
    for line in (setting / "tiles.tsv").read_text().splitlines()[1:]:
        name, w, h, c, digest = line.split("\t")
        expected[name] = (int(w), int(h), int(c), digest)
    got_labels = sorted(p.name for p in (out / "labelTxt").iterdir())
    assert got_labels == sorted(p.name for p in (setting / "labelTxt").iterdir())
    assert sorted(p.stem for p in (out / "images").iterdir()) == sorted(expected)
    for p in (setting / "labelTxt").iterdir():
        assert (out / "labelTxt" / p.name).read_bytes() == p.read_bytes(), p.name
    for name, (w, h, c, digest) in expected.items():
        img = cv2.imread(str(out / "images" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert (img.shape[1], img.shape[0], img.shape[2]) == (w, h, c), name
        assert hashlib.sha256(img.tobytes()).hexdigest() == digest, name
