"""Make the charts shown in docs/curate-look.md with the real command, on the real data under ../shared/data:

* docs/curate_objects_per_class.png: the 13 VOC sample photographs laid out as train/ and val/ folders (the first 7
  train, the rest val), so the bars are stacked by split;
* docs/curate_box_width_height.png and docs/curate_box_centres.png: the two DOTA example images (600 objects).

Usage: python docs/make_curate_look_figures.py   (needs dsprep[plots])
"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"


def charts(dataset, out):
    subprocess.run([sys.executable, "-m", "dsprep", "info", str(dataset), "--plots", str(out), "--quiet"],
                   check=True, stdout=subprocess.DEVNULL, cwd=HERE.parent)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = SHARED / "voc_sample"
        stems = sorted(p.stem for p in (src / "JPEGImages").glob("*.jpg"))
        for i, s in enumerate(stems):
            split = tmp / "voc" / ("train" if i < 7 else "val")
            split.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / "Annotations" / f"{s}.xml", split)
            shutil.copy(src / "JPEGImages" / f"{s}.jpg", split)
        charts(tmp / "voc", tmp / "voc_charts")
        charts(SHARED / "dota_example", tmp / "dota_charts")
        shutil.copy(tmp / "voc_charts" / "objects_per_class.png", HERE / "curate_objects_per_class.png")
        shutil.copy(tmp / "dota_charts" / "box_width_height.png", HERE / "curate_box_width_height.png")
        shutil.copy(tmp / "dota_charts" / "box_centres.png", HERE / "curate_box_centres.png")


if __name__ == "__main__":
    main()
