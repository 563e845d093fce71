import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from dsprep import color
from dsprep.cli import main


# ---- slow, obviously-correct references (pixel loops over small images) -----------------------------------------

def ref_luma(img):
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img  # the documented definition


def ref_top_set(values, fraction):
    """Pixels with value >= t, t the largest value such that at least ceil(fraction * n) pixels are >= t."""
    flat = sorted(values.reshape(-1).tolist(), reverse=True)
    want = max(1, int(np.ceil(fraction * len(flat))))
    t = flat[want - 1]
    return t, values >= t


def ref_bottom_set(values, fraction):
    flat = sorted(values.reshape(-1).tolist())
    want = max(1, int(np.ceil(fraction * len(flat))))
    t = flat[want - 1]
    return t, values <= t


def ref_apply(img, gains, offsets=(0, 0, 0)):
    out = np.zeros_like(img)
    h, w = img.shape[:2]
    for y in range(h):
        for x in range(w):
            for c in range(3):
                v = (float(img[y, x, c]) - offsets[c]) * gains[c]
                out[y, x, c] = min(255, max(0, int(np.floor(v + 0.5))))
    return out


def ref_mean(img, mask):
    sums, n = [0.0, 0.0, 0.0], 0
    h, w = mask.shape
    for y in range(h):
        for x in range(w):
            if mask[y, x]:
                n += 1
                for c in range(3):
                    sums[c] += float(img[y, x, c])
    return [s / n for s in sums], n


def ref_reference_white(img, fraction=0.05, min_pixels=100):
    _, mask = ref_top_set(ref_luma(img), fraction)
    means, n = ref_mean(img, mask)
    if n < min_pixels:
        return img.copy()
    return ref_apply(img, [255.0 / m if m > 0 else 1.0 for m in means])


def ref_channel_white(img, fraction=0.05, min_pixels=100):
    gains = []
    for c in range(3):
        _, mask = ref_top_set(img[:, :, c], fraction)
        vals = img[:, :, c][mask].astype(float)
        gains.append(255.0 / vals.mean() if len(vals) >= min_pixels and vals.mean() > 0 else 1.0)
    return ref_apply(img, gains)


def ref_two_point(img, fraction=0.03, min_pixels=100):
    y = ref_luma(img)
    _, hi = ref_top_set(y, fraction)
    _, lo = ref_bottom_set(y, fraction)
    white, n_hi = ref_mean(img, hi)
    black, n_lo = ref_mean(img, lo)
    if min(n_hi, n_lo) < min_pixels:
        return img.copy()
    gains = [255.0 / (w - b) if w > b else 1.0 for w, b in zip(white, black)]
    offsets = [b if w > b else 0.0 for w, b in zip(white, black)]
    return ref_apply(img, gains, offsets)


def ref_shades_of_gray(img, p):
    est = [np.mean(img[:, :, c].astype(float) ** p) ** (1 / p) for c in range(3)]
    target = sum(est) / 3
    return ref_apply(img, [target / e for e in est])


def scene(seed, h=40, w=50, cast=(0.7, 0.85, 1.0)):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3)).astype(float) * np.array(cast)
    return img.astype(np.uint8)


CASES = [
    ("reference-white", lambda im: color.reference_white(im, 0.05, 20), lambda im: ref_reference_white(im, 0.05, 20)),
    ("channel-white", lambda im: color.channel_white(im, 0.05, 20), lambda im: ref_channel_white(im, 0.05, 20)),
    ("two-point", lambda im: color.two_point(im, 0.03, 20), lambda im: ref_two_point(im, 0.03, 20)),
    ("gray-world", color.gray_world, lambda im: ref_shades_of_gray(im, 1.0)),
    ("shades-of-gray", lambda im: color.shades_of_gray(im, 6), lambda im: ref_shades_of_gray(im, 6)),
]


@pytest.mark.parametrize("name, fast, slow", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_reference(name, fast, slow, seed):
    img = scene(seed)
    before = img.copy()
    got = fast(img)
    np.testing.assert_array_equal(img, before)  # the input is never modified
    want = slow(img)
    assert got.dtype == np.uint8 and got.shape == img.shape
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert not np.array_equal(got, img)


def test_ties_at_threshold_are_all_included():
    img = np.full((10, 10, 3), 100, np.uint8)
    img[0, :5] = 200  # 5 bright pixels
    img[1, :] = 150   # 10 pixels tied at the next level
    t, count = color.top_threshold(color.histogram(color.luma(img)), 0.10)  # wants 10 pixels
    assert (t, count) == (150, 15)  # 5 at 200 + all 10 ties at 150
    out = color.reference_white(img, 0.10, min_pixels=15)
    assert not np.array_equal(out, img)
    assert np.array_equal(color.reference_white(img, 0.10, min_pixels=16), img)  # gate counts the ties


def test_gate_leaves_small_images_unchanged():
    img = scene(3, 8, 8)  # 64 pixels: the top 5% is 4 pixels, fewer than 100
    out, changed = color.correct(img, "reference-white")
    assert not changed and np.array_equal(out, img) and out is not img


@pytest.mark.parametrize("method", color.METHODS)
def test_flat_images_unchanged(method):
    img = np.full((30, 30, 3), (40, 90, 200), np.uint8)
    out, changed = color.correct(img, method, min_pixels=1)
    assert not changed and np.array_equal(out, img)


def test_no_overflow_and_no_division_by_zero():
    img = np.zeros((20, 20, 3), np.uint8)
    img[..., 2] = np.arange(400).reshape(20, 20) % 250  # red only: blue and green means are 0
    out = color.reference_white(img, 0.05, 1)
    assert out[..., :2].max() == 0  # gain 1 for empty channels, no NaN
    assert out[..., 2].max() == 255 and out[..., 2].min() == 0  # clipped, not wrapped
    assert (out[..., 2].astype(int) >= img[..., 2]).all()


def test_grayscale_and_alpha():
    gray = scene(4)[:, :, 0]
    out = color.reference_white(gray, 0.05, 10)
    assert out.shape == gray.shape and out.max() == 255
    _, mask = ref_top_set(gray, 0.05)
    gain = 255.0 / gray[mask].astype(float).mean()
    np.testing.assert_array_equal(out, np.clip(np.floor(gray * gain + 0.5), 0, 255).astype(np.uint8))
    rgba = np.dstack([scene(5), np.arange(2000).reshape(40, 50).astype(np.uint8)])
    for method in color.METHODS:
        out, _ = color.correct(rgba, method, min_pixels=10)
        assert out.shape == rgba.shape
        np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
        np.testing.assert_array_equal(out[..., :3], color.correct(rgba[..., :3].copy(), method, min_pixels=10)[0])


def test_bad_input_types():
    with pytest.raises(ValueError, match="uint8"):
        color.reference_white(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        color.reference_white(np.zeros((4, 4, 2), np.uint8))


# ---- CLI -----------------------------------------------------------------------------------------------------------

def test_cli_folder_round_trip(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    cv2.imwrite(str(src / "a.png"), scene(6, 60, 60))
    cv2.imwrite(str(src / "sub" / "b.jpg"), scene(7, 60, 60))
    cv2.imwrite(str(src / "tiny.png"), scene(8, 5, 5))  # gated: unchanged
    res = CliRunner().invoke(main, ["color", "reference-white", str(src), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "3 images, 1 unchanged" in res.output
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.*")) == [
        "a.png", "sub/b.jpg", "tiny.png"]
    got = cv2.imread(str(tmp_path / "out" / "a.png"))
    np.testing.assert_array_equal(got, color.reference_white(cv2.imread(str(src / "a.png"))))
    # never over its inputs without --in-place
    res = CliRunner().invoke(main, ["color", "gray-world", str(src / "a.png"), "--out", str(src), "--overwrite"])
    assert res.exit_code == 2 and "would overwrite its input" in res.output
    before = (src / "a.png").read_bytes()
    res = CliRunner().invoke(main, ["color", "gray-world", str(src / "a.png"), "--in-place"])
    assert res.exit_code == 0 and (src / "a.png").read_bytes() != before
    res = CliRunner().invoke(main, ["color", "gray-world", str(tmp_path / "missing")])
    assert res.exit_code != 0 and "give either --out DIR or --in-place" in res.output


def test_reference_white_restores_a_scene_with_paper_under_tinted_lights(tmp_path):
    """What reference-white is for (and what `dsprep demo` shows): scenes holding a sheet of white paper, under
    warm, cold, green and dim lights, come back close to the same scenes under white light; the paper is white
    again.  (On a scene with nothing white, such as a green field, the brightest grass would be made grey: the
    demo no longer shows that.)"""
    from dsprep.demo import LIGHTS, tinted_scene
    rng = np.random.default_rng(11)
    (tmp_path / "in").mkdir()
    truth = {}
    for k, light in enumerate(LIGHTS):
        tinted, white = tinted_scene(rng, 320, 240, light)
        cv2.imwrite(str(tmp_path / "in" / f"s{k}.png"), tinted)
        truth[f"s{k}.png"] = (tinted, white)
    res = CliRunner().invoke(main, ["color", "reference-white", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    for name, (tinted, white) in truth.items():
        fixed = cv2.imread(str(tmp_path / "out" / name))
        before = np.abs(tinted.astype(int) - white).mean()
        after = np.abs(fixed.astype(int) - white).mean()
        assert before > 15 and after < 6 and after < before / 3, (name, before, after)
        paper = (white.min(axis=2) > 225)
        assert np.abs(fixed[paper].mean(axis=0) - white[paper].mean(axis=0)).max() < 8  # no tint left on it
