"""Per-image work of ``convert``: one record written in another format, its image placed beside it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core import FormatWriter


@dataclass(frozen=True)
class ConvertOptions:
    out: str
    writer: FormatWriter


def convert_one(args) -> dict:
    """Write one record's annotation files in the target format, and place its image (hard link, else copy)."""
    from ..outputs import atomic_write_bytes, copy_file
    rec, opts = args
    out = Path(opts.out)
    files, lossy = opts.writer.record_files(rec)
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / rel, data)
    image = out / opts.writer.image_path(rec)
    if Path(rec.image_path).is_file():
        image.parent.mkdir(parents=True, exist_ok=True)
        if rec.meta.get("exif", 1) != 1 and not rec.meta.get("orient", True):
            # the boxes refer to the stored pixels: the copy must not be turned by readers that apply the tag
            from ..images import clear_orientation
            atomic_write_bytes(image, clear_orientation(Path(rec.image_path).read_bytes(), rec.image_path))
        else:
            copy_file(rec.image_path, image)
    return {"images": 1, "objects": len(rec), **lossy}


def write_dataset_files(out: Path, writer: FormatWriter, records) -> None:
    """The target format's data-set-level files (split lists, a COCO JSON ...), once every record is written."""
    from ..outputs import atomic_write_bytes
    for rel, data in writer.finish(records).items():
        (Path(out) / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(out) / rel, data)
