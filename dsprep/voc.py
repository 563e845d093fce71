"""Pascal VOC XML, the public face: parse, format, read and write annotation files and VOC folders.

``parse_voc(bytes) -> (ImageRecord, [Problem])`` and ``format_voc(rec) -> bytes`` are pure; ``read_voc(path)``,
``write_voc(path, rec)`` and ``write_voc_dataset(out, items)`` their file wrappers; ``update_voc(original, rec)``
writes edited objects into a file keeping every other byte; ``find_voc_parts`` / ``iter_voc_items`` walk the
layouts dsprep knows (``Annotations/``, ``xmls/``, ``annotations/``, loose ``*.xml``); ``read_class_file`` /
``format_class_file`` the ``labels.txt`` class list dsprep keeps beside a VOC data set.  The implementation (and the
format's description for the registry) is :mod:`dsprep.formats.voc`.
"""
from .formats.voc import (CLASS_FILE, VocItem, VocPart, Writer, available_splits, find_voc_parts, format_class_file,
                          format_voc, iter_voc_items, load_voc_item, parse_voc, read_class_file, read_voc, update_voc,
                          write_split_list, write_voc, write_voc_dataset)

__all__ = ["CLASS_FILE", "VocItem", "VocPart", "Writer", "available_splits", "find_voc_parts", "format_class_file",
           "format_voc", "iter_voc_items", "load_voc_item", "parse_voc", "read_class_file", "read_voc", "update_voc",
           "write_split_list", "write_voc", "write_voc_dataset"]
