"""Writes the small format fixtures in this folder, each laid out and formatted as the named tool exports it.

Run from the repository root: ``python tests/data/make_fixtures.py``.  The outputs are committed; this script only
records how they were made.  Images are small deterministic JPEGs (a gradient with a few filled shapes where the
annotations say objects are), so crops and drawings have real pixels to show.
"""
import json
import shutil
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent


def image(path: Path, w: int, h: int, shapes=(), seed=0):
    """A gradient with filled polygons (lists of (x, y) in pixels) in distinct colours."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), np.full_like(x, 96)], -1).astype(np.uint8)
    for pts in shapes:
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.fillPoly(img, [np.round(np.asarray(pts, np.float64) - 0.5).astype(np.int32)], color)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def box(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def write(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def fresh(name: str) -> Path:
    root = HERE / name
    if root.exists():
        shutil.rmtree(root)
    return root


# ---- COCO as CVAT "COCO 1.0" exports it (Datumaro layout, compact JSON) ------------------------------------------
def coco_cvat():
    root = fresh("coco_cvat")
    person = [30.5, 10.0, 44.0, 12.5, 47.25, 40.0, 40.0, 58.0, 28.0, 55.5, 26.0, 30.0]
    crowd_mask = np.zeros((64, 96), bool)
    crowd_mask[40:60, 60:90] = True
    from_mask = crowd_mask.T.reshape(-1)
    runs = np.diff(np.concatenate([[0], np.flatnonzero(from_mask[1:] != from_mask[:-1]) + 1, [from_mask.size]]))
    doc = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""},
        "categories": [{"id": 1, "name": "car", "supercategory": ""}, {"id": 2, "name": "person", "supercategory": ""},
                       {"id": 3, "name": "bicycle", "supercategory": ""}],
        "images": [{"id": 1, "width": 96, "height": 64, "file_name": "frame_000000.jpg", "license": 0,
                    "flickr_url": "", "coco_url": "", "date_captured": 0},
                   {"id": 2, "width": 96, "height": 64, "file_name": "frame_000001.jpg", "license": 0,
                    "flickr_url": "", "coco_url": "", "date_captured": 0},
                   {"id": 3, "width": 96, "height": 64, "file_name": "frame_000002.jpg", "license": 0,
                    "flickr_url": "", "coco_url": "", "date_captured": 0}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [], "area": 510.0,
             "bbox": [50.0, 20.0, 30.0, 17.0], "iscrowd": 0, "attributes": {"occluded": False, "rotation": 0.0}},
            {"id": 2, "image_id": 1, "category_id": 2, "segmentation": [person], "area": 685.6875,
             "bbox": [26.0, 10.0, 21.25, 48.0], "iscrowd": 0, "attributes": {"occluded": True}},
            {"id": 3, "image_id": 2, "category_id": 1, "segmentation": {"counts": [int(v) for v in runs],
                                                                         "size": [64, 96]},
             "area": 600.0, "bbox": [60.0, 40.0, 30.0, 20.0], "iscrowd": 1, "attributes": {"occluded": False}},
            {"id": 4, "image_id": 2, "category_id": 3, "segmentation": [], "area": 192.0,
             "bbox": [5.0, 5.0, 16.0, 12.0], "iscrowd": 0, "attributes": {"occluded": False, "rotation": 0.0}},
        ],
    }
    write(root / "annotations" / "instances_default.json", json.dumps(doc, separators=(",", ":")))
    pts = np.array(person).reshape(-1, 2)
    image(root / "images" / "default" / "frame_000000.jpg", 96, 64, [box(50, 20, 80, 37), pts], 1)
    image(root / "images" / "default" / "frame_000001.jpg", 96, 64, [box(60, 40, 90, 60), box(5, 5, 21, 17)], 2)
    image(root / "images" / "default" / "frame_000002.jpg", 96, 64, [], 3)


# ---- COCO as Roboflow exports it: one folder per split, ids from 0 in each, a dataset-name category 0 ------------
def coco_roboflow():
    root = fresh("coco_roboflow")
    info = {"year": "2024", "version": "3", "description": "Exported from roboflow.com", "contributor": "",
            "url": "https://public.roboflow.com/object-detection/hard-hat-workers", "date_created":
                "2024-03-05T14:21:08+00:00"}
    licenses = [{"id": 1, "url": "https://creativecommons.org/publicdomain/zero/1.0/", "name": "Public Domain"}]
    cats = [{"id": 0, "name": "workers", "supercategory": "none"},
            {"id": 1, "name": "head", "supercategory": "workers"},
            {"id": 2, "name": "helmet", "supercategory": "workers"}]
    splits = {
        "train": [("000001_jpg.rf.3f9c0e6a1b2d4e5f.jpg", [(2, [10, 12, 20, 18]), (1, [50, 8, 16, 16])]),
                  ("000002_jpg.rf.8a7b6c5d4e3f2a1b.jpg", [(2, [30, 30, 24.5, 20.25])])],
        "valid": [("000003_jpg.rf.0f1e2d3c4b5a6978.jpg", [(1, [4, 4, 12, 14]), (2, [60, 20, 22, 22])]),
                  ("000004_jpg.rf.1a2b3c4d5e6f7a8b.jpg", [])],
    }
    for s, (split, items) in enumerate(splits.items()):
        images, anns = [], []
        for i, (name, objs) in enumerate(items):
            images.append({"id": i, "license": 1, "file_name": name, "height": 64, "width": 96,
                           "date_captured": "2024-03-05T14:21:08+00:00"})
            for c, b in objs:
                anns.append({"id": len(anns), "image_id": i, "category_id": c, "bbox": b,
                             "area": round(b[2] * b[3], 3), "segmentation": [], "iscrowd": 0})
            image(root / split / name, 96, 64, [box(b[0], b[1], b[0] + b[2], b[1] + b[3]) for _, b in objs],
                  10 * s + i)
        doc = {"info": info, "licenses": licenses, "categories": cats, "images": images, "annotations": anns}
        write(root / split / "_annotations.coco.json", json.dumps(doc))
    write(root / "README.roboflow.txt", "\nHard Hat Workers - v3 2024-03-05\n==============================\n\n"
          "This dataset was exported via roboflow.com on March 5, 2024\n")


# ---- COCO as Label Studio exports it: result.json beside images/, file_name with the folder, ids from 0 ----------
def coco_labelstudio():
    root = fresh("coco_labelstudio")
    doc = {
        "images": [{"width": 80, "height": 60, "id": 0, "file_name": "images/d5c1e3b0-street.jpg"},
                   {"width": 80, "height": 60, "id": 1, "file_name": "images/7a0f2c19-crossing.jpg"}],
        "categories": [{"id": 0, "name": "Car"}, {"id": 1, "name": "Pedestrian"}],
        "annotations": [
            {"id": 0, "image_id": 0, "category_id": 0, "segmentation": [], "bbox": [8.2, 20.4, 30.5, 18.75],
             "ignore": 0, "iscrowd": 0, "area": 571.875},
            {"id": 1, "image_id": 0, "category_id": 1, "segmentation": [], "bbox": [50.0, 10.0, 10.0, 30.0],
             "ignore": 0, "iscrowd": 0, "area": 300.0},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[40.0, 10.0, 55.0, 12.0, 52.0, 50.0,
                                                                           38.0, 48.0]],
             "bbox": [38.0, 10.0, 17.0, 40.0], "ignore": 0, "iscrowd": 0, "area": 568.0},
        ],
        "info": {"year": 2024, "version": "1.0", "description": "", "contributor": "Label Studio", "url": "",
                 "date_created": "2024-05-02 10:12:03.123456"},
    }
    write(root / "result.json", json.dumps(doc, indent=2))
    image(root / "images" / "d5c1e3b0-street.jpg", 80, 60, [box(8.2, 20.4, 38.7, 39.15), box(50, 10, 60, 40)], 20)
    image(root / "images" / "7a0f2c19-crossing.jpg", 80, 60, [[(40, 10), (55, 12), (52, 50), (38, 48)]], 21)


# ---- COCO 2017 style: annotations/instances_val2017.json + val2017/, category ids with gaps, crowd RLE ----------
def coco2017():
    root = fresh("coco2017_mini")
    crowd = np.zeros((60, 80), bool)
    crowd[30:52, 4:40] = True
    crowd[36:44, 10:20] = False
    flat = crowd.T.reshape(-1)
    runs = np.diff(np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]]))
    doc = {
        "info": {"description": "COCO 2017 Dataset", "url": "http://cocodataset.org", "version": "1.0",
                 "year": 2017, "contributor": "COCO Consortium", "date_created": "2017/09/01"},
        "licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1,
                      "name": "Attribution-NonCommercial-ShareAlike License"}],
        "images": [{"license": 1, "file_name": "000000397133.jpg", "coco_url": "http://images.cocodataset.org/"
                    "val2017/000000397133.jpg", "height": 60, "width": 80, "date_captured": "2013-11-14 17:02:52",
                    "flickr_url": "http://farm7.staticflickr.com/6116/6255196340_da26cf2c9e_z.jpg", "id": 397133},
                   {"license": 1, "file_name": "000000037777.jpg", "coco_url": "http://images.cocodataset.org/"
                    "val2017/000000037777.jpg", "height": 60, "width": 80, "date_captured": "2013-11-14 20:55:31",
                    "flickr_url": "http://farm9.staticflickr.com/8429/7839199426_f6d48aa585_z.jpg", "id": 37777}],
        "annotations": [
            {"segmentation": [[10.26, 5.45, 22.1, 4.9, 24.3, 30.8, 12.04, 33.12]], "area": 317.4, "iscrowd": 0,
             "image_id": 397133, "bbox": [10.26, 4.9, 14.04, 28.22], "category_id": 1, "id": 183020},
            {"segmentation": [[40.5, 30.0, 70.25, 30.0, 70.25, 50.5, 40.5, 50.5],
                              [72.0, 40.0, 78.0, 40.0, 76.0, 48.0]],
             "area": 633.875, "iscrowd": 0, "image_id": 397133, "bbox": [40.5, 30.0, 37.5, 20.5], "category_id": 3,
             "id": 1713655},
            {"segmentation": {"counts": [int(v) for v in runs], "size": [60, 80]}, "area": float(crowd.sum()),
             "iscrowd": 1, "image_id": 37777, "bbox": [4.0, 30.0, 36.0, 22.0], "category_id": 1,
             "id": 900100037777},
            {"segmentation": [[50.0, 5.0, 60.0, 5.0, 60.0, 25.0, 50.0, 25.0]], "area": 200.0, "iscrowd": 0,
             "image_id": 37777, "bbox": [50.0, 5.0, 10.0, 20.0], "category_id": 44, "id": 82445},
        ],
        "categories": [{"supercategory": "person", "id": 1, "name": "person"},
                       {"supercategory": "vehicle", "id": 3, "name": "car"},
                       {"supercategory": "animal", "id": 18, "name": "dog"},
                       {"supercategory": "kitchen", "id": 44, "name": "bottle"}],
    }
    write(root / "annotations" / "instances_val2017.json", json.dumps(doc))
    image(root / "val2017" / "000000397133.jpg", 80, 60,
          [np.array(doc["annotations"][0]["segmentation"][0]).reshape(-1, 2), box(40.5, 30, 70.25, 50.5)], 30)
    image(root / "val2017" / "000000037777.jpg", 80, 60, [box(4, 30, 40, 52), box(50, 5, 60, 25)], 31)


# ---- YOLO as Ultralytics lays it out (coco8-like data.yaml) ---------------------------------------------------------
def yolo_ultralytics():
    root = fresh("yolo_ultralytics")
    write(root / "data.yaml", """\
# Ultralytics YOLO, AGPL-3.0 license
# A tiny detection data set laid out as Ultralytics' coco8 (https://docs.ultralytics.com/datasets/detect/coco8/)
# Example usage: yolo train data=data.yaml

# Train/val/test sets as 1) dir: path/to/imgs, 2) file: path/to/imgs.txt, or 3) list: [path/to/imgs1, path/to/imgs2, ..]
path: ../datasets/tiny8 # dataset root dir
train: images/train # train images (relative to 'path') 3 images
val: images/val # val images (relative to 'path') 2 images
test: # test images (optional)

# Classes
names:
  0: person
  1: bicycle
  2: car
  3: traffic light

# Download script/URL (optional)
download: |
  from ultralytics.utils.downloads import download
  download(["https://example.com/tiny8.zip"])  # not a real URL
""")
    # (stem, split, w, h, [(cls, cx, cy, w, h)] or None for no label file)
    items = [("000000000009", "train", 96, 64, [(0, 0.5, 0.5, 0.25, 0.5), (2, 0.8125, 0.25, 0.125, 0.1875)]),
             ("000000000025", "train", 80, 60, [(3, 0.1, 0.2, 0.05, 0.2), (3, 0.9, 0.2, 0.05, 0.2)]),
             ("000000000030", "train", 96, 64, None),
             ("000000000034", "val", 64, 96, [(1, 0.4, 0.6, 0.5, 0.3)]),
             ("000000000036", "val", 96, 64, [])]
    for stem, split, w, h, objs in items:
        shapes = [box((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
                  for _, cx, cy, bw, bh in (objs or [])]
        image(root / "images" / split / f"{stem}.jpg", w, h, shapes, int(stem))
        if objs is not None:
            write(root / "labels" / split / f"{stem}.txt",
                  "".join(f"{c} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n" for c, cx, cy, bw, bh in objs))


# ---- YOLO as Roboflow exports it ("YOLOv8" format): split folders, ../ paths, names as a list ---------------------
def yolo_roboflow():
    root = fresh("yolo_roboflow")
    write(root / "data.yaml", """\
train: ../train/images
val: ../valid/images
test: ../test/images

nc: 3
names: ['head', 'helmet', 'person']

roboflow:
  workspace: joseph-nelson
  project: hard-hat-workers
  version: 13
  license: Public Domain
  url: https://universe.roboflow.com/joseph-nelson/hard-hat-workers/dataset/13
""")
    write(root / "README.roboflow.txt", "\nHard Hat Workers - v13\n======================\n\n"
          "This dataset was exported via roboflow.com on March 5, 2024\n")
    items = {"train": [("hard_hat_workers0_png.rf.2a4e8b1c.jpg", [(1, 0.3, 0.3, 0.2, 0.25), (2, 0.7, 0.6, 0.3, 0.5)]),
                       ("hard_hat_workers1_png.rf.9d0c7f3e.jpg", [(0, 0.5, 0.5, 0.1, 0.15)])],
             "valid": [("hard_hat_workers7_png.rf.5b6a1e2f.jpg", [(1, 0.25, 0.25, 0.125, 0.125)])]}
    for s, (split, files) in enumerate(items.items()):
        for i, (name, objs) in enumerate(files):
            image(root / split / "images" / name, 96, 64,
                  [box((cx - bw / 2) * 96, (cy - bh / 2) * 64, (cx + bw / 2) * 96, (cy + bh / 2) * 64)
                   for _, cx, cy, bw, bh in objs], 40 + 10 * s + i)
            write(root / split / "labels" / (name[:-4] + ".txt"),
                  "\n".join(f"{c} {cx} {cy} {bw} {bh}" for c, cx, cy, bw, bh in objs))  # no final newline


# ---- YOLO as CVAT "YOLO 1.1" exports it (darknet: obj.names, obj.data, train.txt, obj_train_data/) ---------------
def yolo_cvat():
    root = fresh("yolo_darknet_cvat")
    write(root / "obj.names", "car\nperson\n")
    write(root / "obj.data", "classes = 2\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")
    names = ["frame_000000.jpg", "frame_000001.jpg"]
    write(root / "train.txt", "".join(f"data/obj_train_data/{n}\n" for n in names))
    labels = ["0 0.520833 0.484375 0.312500 0.265625\n1 0.213542 0.546875 0.114583 0.468750\n", ""]
    for i, (n, text) in enumerate(zip(names, labels)):
        image(root / "obj_train_data" / n, 96, 64, [], 50 + i)
        write(root / "obj_train_data" / (n[:-4] + ".txt"), text)


# ---- YOLO-OBB as Ultralytics' DOTA8 (split DOTA tiles, corners normalized, 6 decimals) ---------------------------
def yolo_obb():
    root = fresh("yolo_obb_dota8")
    names = ["plane", "ship", "storage tank", "baseball diamond", "tennis court", "basketball court",
             "ground track field", "harbor", "bridge", "large vehicle", "small vehicle", "helicopter", "roundabout",
             "soccer ball field", "swimming pool"]
    write(root / "data.yaml", "# Ultralytics YOLO, AGPL-3.0 license\n"
          "# DOTA8-like data set: a few split DOTA tiles (https://docs.ultralytics.com/datasets/obb/dota8/)\n"
          "# Example usage: yolo train model=yolov8n-obb.pt data=data.yaml\n\n"
          "path: ../datasets/dota8 # dataset root dir\n"
          "train: images/train # train images (relative to 'path') 2 images\n"
          "val: images/val # val images (relative to 'path') 1 images\n\n"
          "# Classes for DOTA 1.0\nnames:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(names)))
    quads = {("P1053__1024__0___90", "train"): [(1, [(20.5, 30.25), (60.75, 22.5), (66.0, 48.0), (25.5, 55.5)]),
                                                 (10, [(90, 90), (110, 90), (110, 100), (90, 100)])],
             ("P0861__1024__0___1648", "train"): [(0, [(64, 10), (100, 40), (70, 76), (34, 46)])],
             ("P1142__1024__0___824", "val"): [(9, [(5, 100), (45, 95), (47, 110), (7, 115)]),
                                               (7, [(80, 5), (127, 5), (127, 40), (80, 40)])]}
    for (stem, split), objs in quads.items():
        image(root / "images" / split / f"{stem}.jpg", 128, 128, [q for _, q in objs], sum(stem.encode()) % 97)
        write(root / "labels" / split / f"{stem}.txt",
              "".join(f"{c} " + " ".join(f"{x / 128:.6f} {y / 128:.6f}" for x, y in q) + "\n" for c, q in objs))


# ---- labelme 5.x: one JSON beside each image ---------------------------------------------------------------------
def labelme():
    root = fresh("labelme")

    def shape(label, points, kind, group_id=None, flags=None, description=""):
        return {"label": label, "points": [[float(x), float(y)] for x, y in points], "group_id": group_id,
                "description": description, "shape_type": kind, "flags": flags or {}, "mask": None}

    docs = {
        "IMG_0041": (96, 64, [
            shape("dog", [(10.5, 12.25), (40.0, 50.0)], "rectangle"),
            shape("cat", [(50, 10), (80, 14), (84, 40), (62, 52), (48, 30)], "polygon", flags={"difficult": True}),
            shape("ball", [(24, 54), (28, 54)], "circle"),
            shape("nose", [(30, 20)], "point"),
        ]),
        "IMG_0042": (96, 64, [
            shape("person", [(20, 10), (34, 10), (34, 30), (20, 30)], "polygon", group_id=1),
            shape("person", [(22, 30), (32, 30), (33, 58), (21, 58)], "polygon", group_id=1),
            shape("dog", [(60.0, 40.0), (90.0, 20.0)], "rectangle", description="sitting"),
        ]),
    }
    for i, (stem, (w, h, shapes)) in enumerate(docs.items()):
        outlines = []
        for s in shapes:
            p = np.array(s["points"])
            if s["shape_type"] == "rectangle":
                outlines.append(box(*p.min(0), *p.max(0)))
            elif s["shape_type"] == "polygon":
                outlines.append(p)
        image(root / f"{stem}.jpg", w, h, outlines, 60 + i)
        doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": f"{stem}.jpg", "imageData": None,
               "imageHeight": h, "imageWidth": w}
        write(root / f"{stem}.json", json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


# ---- YOLO as Label Studio exports it: classes.txt + notes.json beside images/ and labels/ (no split folders) -------
def yolo_labelstudio():
    root = fresh("yolo_labelstudio")
    write(root / "classes.txt", "Car\nPedestrian\nTraffic Light\n")
    notes = {"categories": [{"id": 0, "name": "Car"}, {"id": 1, "name": "Pedestrian"},
                            {"id": 2, "name": "Traffic Light"}],
             "info": {"year": 2024, "version": "1.0", "contributor": "Label Studio"}}
    write(root / "notes.json", json.dumps(notes, indent=2))
    # Label Studio writes its percentages / 100 as Python prints them (full precision)
    items = [("1a2b3c4d-crossing.jpg", 120, 80, [(1, 10.0, 12.5, 15.0, 50.0), (0, 55.0, 40.0, 40.0, 30.0)]),
             ("9f8e7d6c-lights.jpg", 120, 80, [(2, 83.33333333333334, 5.0, 8.333333333333332, 25.0)])]
    for i, (name, w, h, objs) in enumerate(items):  # objs: (class, x%, y%, w%, h%) as Label Studio stores them
        image(root / "images" / name, w, h,
              [box(x * w / 100, y * h / 100, (x + bw) * w / 100, (y + bh) * h / 100) for _, x, y, bw, bh in objs], 70 + i)
        write(root / "labels" / (name[:-4] + ".txt"),
              "".join(f"{c} {(x + bw / 2) / 100} {(y + bh / 2) / 100} {bw / 100} {bh / 100}\n"
                      for c, x, y, bw, bh in objs))


def _yolo6(c, x0, y0, x1, y1, w, h):
    """One label line as CVAT and Datumaro write it: centre and size with 6 decimals."""
    return f"{c} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}\n"


# ---- YOLO as Datumaro's "yolo" exporter writes it (strict: obj.data, two subsets, 6 decimals, edge boxes) --------
def yolo_datumaro():
    root = fresh("yolo_datumaro")
    write(root / "obj.names", "bus\ncar\n")
    write(root / "obj.data", "classes = 2\ntrain = data/train.txt\nvalid = data/valid.txt\nnames = data/obj.names\n"
                             "backup = backup/\n")
    # boxes reaching the right / bottom edge of odd-sized images: 6 decimals overshoot the image by ~1e-5 px
    subsets = {"train": [("0001.jpg", 97, 61, [(1, 40, 20, 97, 61), (0, 0, 0, 30, 25)])],
               "valid": [("0002.jpg", 133, 71, [(0, 13, 9, 133, 71)])]}
    for subset, files in subsets.items():
        write(root / f"{subset}.txt", "".join(f"data/obj_{subset}_data/{n}\n" for n, *_ in files))
        for i, (n, w, h, objs) in enumerate(files):
            image(root / f"obj_{subset}_data" / n, w, h, [box(*o[1:]) for o in objs], 80 + i)
            write(root / f"obj_{subset}_data" / (n[:-4] + ".txt"), "".join(_yolo6(*o, w, h) for o in objs))


# ---- YOLO as Datumaro's loose layout reads it: obj.names + images/<subset>/ + labels/<subset>/ ------------------
def yolo_datumaro_loose():
    root = fresh("yolo_datumaro_loose")
    write(root / "obj.names", "bus\ncar\n")
    write(root / "labels" / "README.txt", "Not a label file: an importer must leave it out.\n")
    for subset, (stem, w, h, objs) in {"train": ("1", 64, 48, [(1, 8, 8, 40, 30)]),
                                       "valid": ("2", 64, 48, [(0, 20, 10, 64, 48), (1, 0, 0, 10, 12)])}.items():
        image(root / "images" / subset / f"{stem}.jpg", w, h, [box(*o[1:]) for o in objs], 90 + len(subset))
        write(root / "labels" / subset / f"{stem}.txt", "".join(_yolo6(*o, w, h) for o in objs))


# ---- DOTA as Roboflow's oriented-box export lays it out: data.yaml + <split>/images + <split>/labelTxt ----------
def dota_roboflow_obb():
    root = fresh("dota_roboflow_obb")
    write(root / "data.yaml", "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 3\n"
                              "names: ['plane', 'ship', 'storage-tank']\n\nroboflow:\n  workspace: aerial-demo\n"
                              "  project: ships-and-planes\n  version: 2\n  license: CC BY 4.0\n"
                              "  url: https://universe.roboflow.com/aerial-demo/ships-and-planes/dataset/2\n")
    write(root / "README.roboflow.txt", "\nShips and planes - v2\n=====================\n\n"
          "This dataset was exported via roboflow.com on June 3, 2024\n")
    items = {"train": [("P0001_png.rf.4c1d2e3f.jpg", [("ship", [(20, 30), (60, 22), (66, 48), (25, 56)], 0),
                                                        ("plane", [(80, 70), (120, 70), (120, 110), (80, 110)], 0)]),
                       ("P0002_png.rf.7a8b9c0d.jpg", [("storage-tank", [(10, 10), (30, 10), (30, 30), (10, 30)], 1)])],
             "valid": [("P0003_png.rf.0e1f2a3b.jpg", [("ship", [(64, 10), (100, 40), (70, 76), (34, 46)], 0)])]}
    for s, (split, files) in enumerate(items.items()):
        for i, (name, objs) in enumerate(files):
            image(root / split / "images" / name, 128, 128, [q for _, q, _ in objs], 100 + 10 * s + i)
            write(root / split / "labelTxt" / (name[:-4] + ".txt"),
                  "".join(" ".join(f"{float(v)}" for pt in q for v in pt) + f" {c} {d}\n" for c, q, d in objs))


# ---- COCO 2017's other task files beside instances_*: keypoints, stuff, captions ---------------------------------
def coco2017_tasks():
    root = fresh("coco2017_tasks")
    images = [{"license": 1, "file_name": "000000000139.jpg", "height": 60, "width": 80, "id": 139},
              {"license": 1, "file_name": "000000000285.jpg", "height": 60, "width": 80, "id": 285}]
    info = {"description": "COCO 2017 Dataset", "url": "http://cocodataset.org", "version": "1.0", "year": 2017,
            "contributor": "COCO Consortium", "date_created": "2017/09/01"}
    licenses = [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1,
                 "name": "Attribution-NonCommercial-ShareAlike License"}]
    person = {"supercategory": "person", "id": 1, "name": "person"}
    instances = {"info": info, "licenses": licenses, "images": images, "annotations": [
        {"segmentation": [[10.0, 5.0, 30.0, 5.0, 30.0, 50.0, 10.0, 50.0]], "area": 900.0, "iscrowd": 0,
         "image_id": 139, "bbox": [10.0, 5.0, 20.0, 45.0], "category_id": 1, "id": 1},
        {"segmentation": [[40.0, 20.0, 70.0, 20.0, 70.0, 40.0, 40.0, 40.0]], "area": 600.0, "iscrowd": 0,
         "image_id": 285, "bbox": [40.0, 20.0, 30.0, 20.0], "category_id": 23, "id": 2}],
        "categories": [person, {"supercategory": "animal", "id": 23, "name": "bear"}]}
    kp_names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                "right_knee", "left_ankle", "right_ankle"]
    keypoints = [0] * 51
    keypoints[0:3] = [20, 8, 2]
    keypoints[15:18] = [14, 18, 2]
    keypoints[18:21] = [26, 18, 1]
    kp = {"info": info, "licenses": licenses, "images": images, "annotations": [
        {"segmentation": [[10.0, 5.0, 30.0, 5.0, 30.0, 50.0, 10.0, 50.0]], "num_keypoints": 3, "area": 900.0,
         "iscrowd": 0, "keypoints": keypoints, "image_id": 139, "bbox": [10.0, 5.0, 20.0, 45.0], "category_id": 1,
         "id": 1}],
        "categories": [dict(person, keypoints=kp_names,
                            skeleton=[[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13]])]}
    stuff = {"info": info, "licenses": licenses, "images": images, "annotations": [
        {"segmentation": [[0.0, 50.0, 80.0, 50.0, 80.0, 60.0, 0.0, 60.0]], "area": 800.0, "iscrowd": 0,
         "image_id": 139, "bbox": [0.0, 50.0, 80.0, 10.0], "category_id": 124, "id": 10000001},
        {"segmentation": [[0.0, 0.0, 80.0, 0.0, 80.0, 20.0, 0.0, 20.0]], "area": 1600.0, "iscrowd": 0,
         "image_id": 285, "bbox": [0.0, 0.0, 80.0, 20.0], "category_id": 157, "id": 10000002}],
        "categories": [{"supercategory": "floor", "id": 124, "name": "floor-other"},
                       {"supercategory": "sky", "id": 157, "name": "sky-other"}]}
    captions = {"info": info, "licenses": licenses, "images": images, "annotations": [
        {"image_id": 139, "id": 372891, "caption": "A person standing in a room."}]}
    for name, doc in (("instances", instances), ("person_keypoints", kp), ("stuff", stuff), ("captions", captions)):
        write(root / "annotations" / f"{name}_val2017.json", json.dumps(doc))
    image(root / "val2017" / "000000000139.jpg", 80, 60, [box(10, 5, 30, 50)], 110)
    image(root / "val2017" / "000000000285.jpg", 80, 60, [box(40, 20, 70, 40)], 111)


# ---- labelme's tutorial: the image embedded as imageData, imagePath naming the JSON, the image beside it --------
def labelme_embedded():
    import base64
    root = fresh("labelme_embedded")
    image(root / "apc2016_obj3.jpg", 96, 64, [box(20, 10, 60, 50)], 120)
    data = (root / "apc2016_obj3.jpg").read_bytes()
    doc = {"version": "5.4.1", "flags": {}, "shapes": [
        {"label": "shelf", "points": [[20.0, 10.0], [60.0, 10.0], [60.0, 50.0], [20.0, 50.0]], "group_id": None,
         "description": "", "shape_type": "polygon", "flags": {}, "mask": None}],
        "imagePath": "apc2016_obj3.json", "imageData": base64.b64encode(data).decode("ascii"),
        "imageHeight": 64, "imageWidth": 96}
    write(root / "apc2016_obj3.json", json.dumps(doc, indent=2) + "\n")


# ---- YOLO-seg (Ultralytics instance segmentation: one normalized polygon per line) ---------------------------------
def _seg_line(c, pts, w, h, digits=6):
    if digits is None:  # the shortest text of each number
        return f"{c} " + " ".join(f"{x / w!r} {y / h!r}" for x, y in pts)
    return f"{c} " + " ".join(f"{x / w:.{digits}f} {y / h:.{digits}f}" for x, y in pts)


def yolo_seg_coco8():
    """As Ultralytics' coco8-seg (https://docs.ultralytics.com/datasets/segment/coco8-seg/): data.yaml with comments
    and a path that does not exist here, names as a mapping; 6-decimal polygons of any length (3 points at least);
    a background image without a label file."""
    root = fresh("yolo_seg_coco8")
    write(root / "data.yaml", """\
# Ultralytics YOLO, AGPL-3.0 license
# A tiny instance segmentation data set laid out as Ultralytics' coco8-seg
# Example usage: yolo train data=data.yaml

# Train/val/test sets as 1) dir: path/to/imgs, 2) file: path/to/imgs.txt, or 3) list: [path/to/imgs1, path/to/imgs2, ..]
path: ../datasets/tiny8-seg # dataset root dir
train: images/train # train images (relative to 'path') 2 images
val: images/val # val images (relative to 'path') 2 images
test: # test images (optional)

# Classes
names:
  0: person
  1: bicycle
  2: car
""")
    # (stem, split, w, h, [(cls, [(x, y) px ...])] or None for no label file)
    items = [("000000000049", "train", 96, 64, [(0, [(30, 8), (44, 10), (46, 40), (40, 58), (28, 56), (26, 30)]),
                                                 (2, [(60, 30), (90, 32), (88, 50), (62, 50)])]),
             ("000000000061", "train", 80, 60, [(1, [(10, 10), (30, 12), (20, 40)])]),
             ("000000000074", "val", 64, 96, [(2, [(8, 20), (56, 20), (56, 60), (40, 60), (40, 44), (24, 44),
                                                    (24, 60), (8, 60)])]),
             ("000000000077", "val", 96, 64, None)]
    for stem, split, w, h, objs in items:
        image(root / "images" / split / f"{stem}.jpg", w, h, [p for _, p in objs or []], int(stem))
        if objs is not None:
            write(root / "labels" / split / f"{stem}.txt", "".join(_seg_line(c, p, w, h) + "\n" for c, p in objs))


def yolo_seg_roboflow():
    """As Roboflow's "YOLOv8" export of a segmentation project: split folders, ../ paths, names as a list, a box drawn
    as a 4-point polygon, no final newline."""
    root = fresh("yolo_seg_roboflow")
    write(root / "data.yaml", """\
train: ../train/images
val: ../valid/images
test: ../test/images

nc: 2
names: ['crack', 'pothole']

roboflow:
  workspace: demo
  project: road-damage-seg
  version: 2
  license: CC BY 4.0
  url: https://universe.roboflow.com/demo/road-damage-seg/dataset/2
""")
    items = {"train": [("road1_jpg.rf.0a1b2c3d.jpg", [(1, [(20, 20), (50, 18), (60, 40), (35, 52), (18, 40)]),
                                                      (0, [(70, 5), (90, 5), (90, 25), (70, 25)])])],
             "valid": [("road7_jpg.rf.4e5f6a7b.jpg", [(0, [(10, 50), (80, 10), (84, 16), (14, 56)])])]}
    for s, (split, files) in enumerate(items.items()):
        for name, objs in files:
            image(root / split / "images" / name, 96, 64, [p for _, p in objs], 130 + s)
            write(root / split / "labels" / (name[:-4] + ".txt"), "\n".join(_seg_line(c, p, 96, 64, None)
                                                                             for c, p in objs))


def yolo_seg_cvat():
    """As CVAT's "Ultralytics YOLO Segmentation 1.0" export: data.yaml with path ./ and train: train.txt, the list
    naming images/train/..., names as a mapping."""
    root = fresh("yolo_seg_cvat")
    write(root / "data.yaml", "path: ./\ntrain: train.txt\n\nnames:\n  0: cat\n  1: dog\n")
    write(root / "train.txt", "images/train/frame_000000.jpg\nimages/train/frame_000001.jpg\n")
    objs = [[(1, [(12, 8), (40, 8), (44, 30), (26, 44), (10, 30)])], []]
    for i, o in enumerate(objs):
        image(root / "images" / "train" / f"frame_{i:06d}.jpg", 64, 48, [p for _, p in o], 140 + i)
        write(root / "labels" / "train" / f"frame_{i:06d}.txt", "".join(_seg_line(c, p, 64, 48) + "\n"
                                                                        for c, p in o))


if __name__ == "__main__":
    for make in (coco_cvat, coco_roboflow, coco_labelstudio, coco2017, yolo_ultralytics, yolo_roboflow, yolo_cvat,
                 yolo_obb, labelme, yolo_labelstudio, yolo_datumaro, yolo_datumaro_loose, dota_roboflow_obb,
                 coco2017_tasks, labelme_embedded, yolo_seg_coco8, yolo_seg_roboflow, yolo_seg_cvat):
        make()
