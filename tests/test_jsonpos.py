"""Positions in JSON text for error messages: the lines of list entries, the span of a top-level value."""
import json

from dsprep.formats.jsonpos import element_line, element_lines, value_span


DOC = """\ufeff{
  "info": {"note": "a } and a ] inside a string", "list": [1, 2]},
  "images": [
    {"id": 1},
    {"id": 2,
     "file_name": "b.jpg"},

    {"id": 3}
  ],
  "shapes": []
}
"""


def test_element_lines_are_the_lines_the_entries_start_on():
    assert element_lines(DOC, "images", [0, 1, 2]) == {0: 4, 1: 5, 2: 8}
    assert element_lines(DOC.encode("utf-8"), "images", [2]) == {2: 8}  # bytes with a BOM
    assert element_lines(DOC, "images", [7]) == {}  # beyond the list
    assert element_lines(DOC, "missing", [0]) == {}
    assert element_line(DOC, "images", 9) == 1  # not found: still a valid file:line


def test_value_span_gives_back_the_value_text():
    text = DOC.lstrip("\ufeff")
    start, end = value_span(text, "info")
    assert json.loads(text[start:end]) == {"note": "a } and a ] inside a string", "list": [1, 2]}
    start, end = value_span(text, "shapes")
    assert text[start:end] == "[]"
    assert value_span(text, "missing") is None


def test_malformed_documents_give_nothing_rather_than_an_error():
    for bad in ["", "[1, 2]", '{"images": [{"id": 1}', '{"images" [1]}', "{", '{"a": 1,']:
        assert element_lines(bad, "images", [0, 1]) in ({}, {0: 1})
        assert value_span(bad, "images") is None
