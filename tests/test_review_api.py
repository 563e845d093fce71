"""dsprep review over real HTTP: the token gate, what is (not) served, saving safely, the command line."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from dsprep.core import UsageError
from dsprep.review.session import HISTORY_DIR, Review

from helpers import run_cli, write_voc_tree
from review_support import Client, serving, writable_copy

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def voc(shared, tmp_path):
    return writable_copy(shared / "voc_sample", tmp_path / "voc")


@pytest.fixture
def dota(shared, tmp_path):
    return writable_copy(shared / "dota_example", tmp_path / "dota")


def ann(root, stem):
    return root / "Annotations" / f"{stem}.xml"


def image_id(client, stem):
    return next(it[0] for it in client.json("GET", "/api/images")["items"] if it[1] == stem)


def as_sent(rec_json, shape="box"):
    """The page's save payload for an image as the server sent it (nothing changed)."""
    key = "polygon" if shape == "polygon" else "box"
    return [{"src": k, "name": o["name"], key: o[key], "difficult": o["difficult"], "truncated": o["truncated"]}
            for k, o in enumerate(rec_json["objects"])]


# ---- the gate -----------------------------------------------------------------------------------------------------

GETS = ["/", "/static/app.js", "/static/app.css", "/api/dataset", "/api/images?class=dog", "/api/images/0",
        "/api/images/0/image", "/api/images/0/thumb?size=128", "/api/images/0/objects/0/crop",
        "/api/images/0/history", "/api/gallery?class=dog", "/api/colors?name=dog"]


def test_every_request_needs_the_token(voc):
    before = ann(voc, "000001").read_bytes()
    with serving(voc) as server:
        for token in (None, "", "x" * 32, server.token[:-1], server.token + "x"):
            c = Client(server, token=token)
            for path in GETS:
                code, headers, body = c.get(path)
                assert code == 403, path
                assert b"token" in body and b"dog" not in body and not body.startswith(b"\xff\xd8")
            code, _, _ = c.request("POST", "/api/images/0/save", body={"version": "x", "objects": []})
            assert code == 403
            code, _, _ = c.request("POST", "/api/images/0/restore", body={"version": "x", "entry": "y"})
            assert code == 403
        good = Client(server)
        for path in GETS:
            code, headers, body = good.get(path)
            assert code == 200, (path, body[:200])
            code, _, _ = good.get(path, query_token=True, headers={"X-Dsprep-Token": ""})
            assert code == 200, path
    assert ann(voc, "000001").read_bytes() == before


def test_page_carries_the_token_and_strict_headers(voc):
    with serving(voc) as server:
        code, headers, body = Client(server).get("/", query_token=True)
        assert code == 200 and server.token.encode() in body and b"__TOKEN__" not in body
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        for path in GETS:
            _, headers, _ = Client(server).get(path)
            assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
            assert not any(k.lower().startswith("access-control-") for k in headers), path
        code, headers, _ = Client(server).request("OPTIONS", "/api/dataset",
                                                  headers={"Origin": "http://evil.example",
                                                           "Access-Control-Request-Method": "POST"})
        assert code == 405 and not any(k.lower().startswith("access-control-") for k in headers)


@pytest.mark.parametrize("headers", [{"Host": "evil.example"}, {"Host": "evil.example:80"},
                                     {"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"}])
def test_foreign_pages_are_refused_even_with_the_token(voc, headers):
    with serving(voc) as server:
        # a DNS-rebinding page makes the browser send the attacker's host name; another site sends its Origin
        code, _, body = Client(server).get("/api/dataset", headers=headers)
        assert code == 403 and b"dog" not in body


def _outward_address():
    """This machine's address on its default route (a UDP connect sends nothing), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        addr = s.getsockname()[0]
    return None if addr.startswith("127.") else addr


def test_listens_on_loopback_only(voc):
    with serving(voc) as server:
        assert server.server_address[0] == "127.0.0.1"
        with socket.create_connection(("127.0.0.1", server.port), timeout=2):
            pass
        addr = _outward_address()
        if addr is None:
            pytest.skip("no non-loopback address on this machine to try")
        with pytest.raises(OSError):
            socket.create_connection((addr, server.port), timeout=2).close()


TRAVERSALS = ["/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/../../etc/passwd",
              "//etc/passwd", "/static/app.js/../../../etc/passwd", "/static/index.html", "/static/",
              "/static/APP.JS", "/api/images/0/../../../../etc/passwd", "/api/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
              "/api/images/-1", "/api/images/99999", "/api/images/0/objects/99/crop", "/api/images/1e3",
              "/Annotations/000001.xml", "/JPEGImages/000001.jpg", "/api/images/0/image/../../../etc/passwd",
              "/api/images/0/thumb?size=1000000", "/api/images/0/thumb?size=-1"]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_nothing_outside_the_routes_is_served(voc, path):
    with serving(voc) as server:
        code, _, body = Client(server).get(path)
        assert code in (400, 404), code
        assert b"root:" not in body and b"<annotation>" not in body and not body.startswith(b"\xff\xd8")


def test_restore_takes_only_listed_history_names(voc):
    target = ann(voc, "000002")
    before = target.read_bytes()
    (voc / "secret.xml").write_bytes(b"<annotation><filename>secret</filename></annotation>")
    with serving(voc) as server:
        c = Client(server)
        i = image_id(c, "000002")
        version = c.json("GET", f"/api/images/{i}")["version"]
        for entry in ("../../secret.xml", "../000001.xml", "/etc/passwd", "000002.xml", ""):
            code, _, body = c.request("POST", f"/api/images/{i}/restore", body={"version": version, "entry": entry})
            assert code == 404, (entry, body)
    assert target.read_bytes() == before


def test_bad_requests_get_one_clear_status(voc):
    with serving(voc) as server:
        c = Client(server)
        code, _, body = c.request("POST", "/api/images/0/save", raw_body=b"{}", headers={"Content-Type": "text/plain"})
        assert code == 415
        code, _, body = c.request("POST", "/api/images/0/save", raw_body=b"{not json",
                                  headers={"Content-Type": "application/json"})
        assert code == 400 and b"not JSON" in body
        code, _, _ = c.request("GET", "/api/images/0/save")
        assert code == 405
        code, _, _ = c.request("POST", "/api/images/0", body={})
        assert code == 405
        code, _, body = c.request("POST", "/api/images/0/save", raw_body=b"x" * 100,
                                  headers={"Content-Type": "application/json", "Content-Length": str(64 << 20)})
        assert code == 413


# ---- looking --------------------------------------------------------------------------------------------------------

def test_summary_filters_and_record(voc):
    with serving(voc) as server:
        c = Client(server)
        s = c.json("GET", "/api/dataset")
        assert s["format"] == "voc" and s["images"] == 13 and s["editable"] and s["shape"] == "box"
        by_name = {x["name"]: x for x in s["classes"]}
        assert by_name["dog"]["objects"] == 1 and by_name["dog"]["images"] == 1
        from dsprep.draw import class_color
        b, g, r = class_color("dog")
        assert by_name["dog"]["color"] == f"#{r:02x}{g:02x}{b:02x}"
        assert {x["name"]: x["images"] for x in s["splits"]} == {"test": 10, "trainval": 13}
        assert [it[1] for it in c.json("GET", "/api/images?class=dog")["items"]] == ["000001"]
        test_ids = [it[1] for it in c.json("GET", "/api/images?split=test")["items"]]
        assert len(test_ids) == 10 and "2011_000003" not in test_ids
        assert c.json("GET", "/api/images?class=person&split=test")["items"]
        assert c.json("GET", "/api/images?class=nosuch")["items"] == []
        rec = c.json("GET", f"/api/images/{image_id(c, '000001')}")
        assert rec["annotation"] == "Annotations/000001.xml" and rec["split"] == "test, trainval"
        assert [o["name"] for o in rec["objects"]] == ["dog", "person"]
        assert rec["objects"][0]["box"] == [47, 239, 195, 371]  # 0-based, continuous
        assert rec["version"] == __import__("hashlib").sha256(ann(voc, "000001").read_bytes()).hexdigest()
        assert c.json("GET", "/api/colors?name=dog&name=new%20one")["dog"] == by_name["dog"]["color"]


def test_problem_filter_lists_what_info_finds(tmp_path):
    root = write_voc_tree(tmp_path / "v", {
        "a": (60, 40, [("cat", (11, 6, 30, 25))]),
        "b": (60, 40, [("cat", (1, 1, 80, 10)), ("dog", (5, 5, 4, 9))]),  # clipped, degenerate
    })
    info = json.loads(run_cli("info", root, "--json").output)
    with serving(root) as server:
        c = Client(server)
        s = c.json("GET", "/api/dataset")
        # info's judgements of the boxes as a whole (dsprep.boxstats: rare classes, tiny boxes ...) are its own
        from dsprep.boxstats import KINDS
        assert {p["kind"]: p["count"] for p in s["problems"]} == \
            {k: n for k, n in info["problem_counts"].items() if k not in KINDS}
        assert [it[1] for it in c.json("GET", "/api/images?problem=clipped_box")["items"]] == ["b"]
        assert [it[1] for it in c.json("GET", "/api/images?problem=*")["items"]] == ["b"]
        rec = c.json("GET", f"/api/images/{image_id(c, 'b')}")
        assert rec["objects"][0]["problems"] == ["clipped_box"] and rec["objects"][1]["problems"] == ["degenerate_box"]


def test_thumbnails_crops_and_view_images_are_jpeg_in_parallel(voc):
    with serving(voc) as server:
        c = Client(server)
        n = c.json("GET", "/api/dataset")["images"]
        paths = [f"/api/images/{i}/thumb?size=256&boxes={i % 2}" for i in range(n)] * 2
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(c.get, paths))
        for (code, headers, body), path in zip(results, paths):
            assert code == 200 and headers["Content-Type"] == "image/jpeg", path
            img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
            assert max(img.shape[:2]) <= 256
        i = image_id(c, "000001")
        code, _, body = c.get(f"/api/images/{i}/image")
        assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (500, 353, 3)
        code, _, body = c.get(f"/api/images/{i}/objects/0/crop?size=128")
        crop = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert code == 200 and max(crop.shape[:2]) == 128


def test_pixels_follow_the_orientation_decided_at_load(tmp_path):
    """A phone photo stored 60x30 with EXIF orientation 6: the page shows the pixels its boxes refer to."""
    from helpers import gradient, voc_xml, with_exif_orientation
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    data = with_exif_orientation(cv2.imencode(".jpg", gradient(60, 30))[1].tobytes(), 6)
    for stem, (w, h) in {"shown": (30, 60), "stored": (60, 30), "neither": (50, 50)}.items():
        (root / "JPEGImages" / f"{stem}.jpg").write_bytes(data)
        (root / "Annotations" / f"{stem}.xml").write_bytes(voc_xml(f"{stem}.jpg", w, h, [("cat", (3, 5, 12, 20))]))

    def shape(c, path):
        code, _, body = c.get(path)
        return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape[:2] if code == 200 else code

    for exif, expect in (("auto", {"shown": (60, 30), "stored": (30, 60), "neither": 422}),
                         ("ignore", {"shown": 422, "stored": (30, 60), "neither": 422})):
        with serving(root, exif=exif) as server:
            c = Client(server)
            got = {stem: shape(c, f"/api/images/{image_id(c, stem)}/image") for stem in expect}
            assert got == expect, exif
            for stem in expect:  # every thumbnail is drawn, a size mismatch too (the problem says why)
                i = image_id(c, stem)
                assert c.get(f"/api/images/{i}/thumb")[0] == 200
                assert max(shape(c, f"/api/images/{i}/thumb?size=128")) <= 128
            kinds = {p["kind"] for p in c.json("GET", f"/api/images/{image_id(c, 'neither')}")["problems"]}
            assert "size_mismatch" in kinds


def test_gallery_lists_a_class_sorted(voc):
    with serving(voc) as server:
        c = Client(server)
        items = c.json("GET", "/api/gallery?class=person&sort=area&order=asc")["items"]
        assert len(items) == 10 and [x[2] for x in items] == sorted(x[2] for x in items)
        desc = c.json("GET", "/api/gallery?class=person&sort=aspect&order=desc")["items"]
        assert [x[3] for x in desc] == sorted((x[3] for x in desc), reverse=True)
        i, k = items[0][:2]
        rec = c.json("GET", f"/api/images/{i}")
        x0, y0, x1, y1 = rec["objects"][k]["box"]
        assert rec["objects"][k]["name"] == "person" and items[0][2] == pytest.approx((x1 - x0) * (y1 - y0))


# ---- fixing ---------------------------------------------------------------------------------------------------------

def test_save_rewrites_only_what_changed_keeps_history_and_info_reads_it(voc):
    target = ann(voc, "000001")
    before = target.read_bytes()
    with serving(voc) as server:
        c = Client(server)
        i = image_id(c, "000001")
        rec = c.json("GET", f"/api/images/{i}")
        objects = as_sent(rec)
        objects[0]["name"] = "cat"                      # dog -> cat
        objects[1]["box"] = [17, 21, 352, 498]          # person moved right by 10, down by 10
        out = c.json("POST", f"/api/images/{i}/save", {"version": rec["version"], "objects": objects})
        assert out["saved"] and out["version"] != rec["version"]
        assert [o["name"] for o in out["objects"]] == ["cat", "person"]
        summary = c.json("GET", "/api/dataset")
        assert "dog" not in {x["name"] for x in summary["classes"] if x["objects"]}
        # saving the same objects again writes nothing
        again = c.json("POST", f"/api/images/{i}/save", {"version": out["version"], "objects": as_sent(out)})
        assert not again["saved"]
    after = target.read_bytes()
    assert after == (before.replace(b"<name>dog</name>", b"<name>cat</name>")
                     .replace(b"<xmin>8</xmin>\n\t\t\t<ymin>12</ymin>", b"<xmin>18</xmin>\n\t\t\t<ymin>22</ymin>"))
    history = list((voc / "Annotations" / HISTORY_DIR).iterdir())
    assert len(history) == 1 and history[0].name.startswith("000001.xml.") and history[0].read_bytes() == before
    info = json.loads(run_cli("info", voc, "--json").output)
    assert info["classes"].get("cat") == 1 and "dog" not in info["classes"]
    assert info["images"] == 13  # the history folder is not read as annotations


def test_delete_and_add_objects(voc):
    with serving(voc) as server:
        c = Client(server)
        i = image_id(c, "000001")
        rec = c.json("GET", f"/api/images/{i}")
        objects = as_sent(rec)[1:] + [{"src": None, "name": "bird", "box": [0, 0, 20, 10], "difficult": 1,
                                       "truncated": False}]
        out = c.json("POST", f"/api/images/{i}/save", {"version": rec["version"], "objects": objects})
        assert [(o["name"], o["box"], o["difficult"]) for o in out["objects"]] == [
            ("person", [7, 11, 352, 498], 0), ("bird", [0, 0, 20, 10], 1)]
    assert b"<xmin>1</xmin>" in ann(voc, "000001").read_bytes()  # 1-based on disk


def test_file_changed_on_disk_is_not_overwritten(voc):
    target = ann(voc, "000001")
    with serving(voc) as server:
        c = Client(server)
        i = image_id(c, "000001")
        rec = c.json("GET", f"/api/images/{i}")
        theirs = target.read_bytes().replace(b"<pose>Left</pose>", b"<pose>Right</pose>", 1)
        target.write_bytes(theirs)  # someone else edits the file meanwhile
        objects = as_sent(rec)
        objects[0]["name"] = "cat"
        code, _, body = c.request("POST", f"/api/images/{i}/save", body={"version": rec["version"], "objects": objects})
        assert code == 409 and json.loads(body)["conflict"] and b"changed on disk" in body
        assert target.read_bytes() == theirs
        assert not (voc / "Annotations" / HISTORY_DIR).exists()
        target.unlink()
        code, _, body = c.request("POST", f"/api/images/{i}/save", body={"version": rec["version"], "objects": objects})
        assert code == 409 and b"deleted" in body and not target.exists()


def test_restore_puts_the_previous_file_back_and_is_itself_undoable(voc):
    target = ann(voc, "000001")
    before = target.read_bytes()
    with serving(voc) as server:
        c = Client(server)
        i = image_id(c, "000001")
        rec = c.json("GET", f"/api/images/{i}")
        objects = as_sent(rec)
        objects[0]["name"] = "cat"
        saved = c.json("POST", f"/api/images/{i}/save", {"version": rec["version"], "objects": objects})
        edited = target.read_bytes()
        [entry] = c.json("GET", f"/api/images/{i}/history")["items"]
        back = c.json("POST", f"/api/images/{i}/restore", {"version": saved["version"], "entry": entry["entry"]})
        assert target.read_bytes() == before and back["objects"][0]["name"] == "dog"
        entries = c.json("GET", f"/api/images/{i}/history")["items"]
        assert len(entries) == 2 and entries[0]["entry"] != entry["entry"]
        assert (voc / "Annotations" / HISTORY_DIR / entries[0]["entry"]).read_bytes() == edited


def test_file_permissions_are_kept(voc):
    target = ann(voc, "000003")
    target.chmod(0o600)
    with serving(voc) as server:
        c = Client(server)
        i = image_id(c, "000003")
        rec = c.json("GET", f"/api/images/{i}")
        objects = as_sent(rec)
        objects[0]["difficult"] = 1
        c.json("POST", f"/api/images/{i}/save", {"version": rec["version"], "objects": objects})
    assert target.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("change, message", [
    (lambda o: o[0].update(name=""), "class name"),
    (lambda o: o[0].update(name="a\nb"), "class name"),
    (lambda o: o[0].update(box=[1, 2, 3]), "box must be"),
    (lambda o: o[0].update(box=[1, 2, True, 4]), "box must be"),
    (lambda o: o[0].update(box=[1, 2, "3", 4]), "box must be"),
    (lambda o: o[0].update(src=1), "at most once"),
    (lambda o: o[0].update(src=7), "at most once"),
    (lambda o: o[0].update(src=-1), "src must be"),
    (lambda o: o[0].update(difficult=300), "difficult"),
    (lambda o: o.append("x"), "not an object"),
])
def test_impossible_edits_are_refused_and_nothing_is_written(voc, change, message):
    target = ann(voc, "000001")
    before = target.read_bytes()
    with serving(voc) as server:
        c = Client(server)
        i = image_id(c, "000001")
        rec = c.json("GET", f"/api/images/{i}")
        objects = as_sent(rec)
        change(objects)
        code, _, body = c.request("POST", f"/api/images/{i}/save", body={"version": rec["version"], "objects": objects})
        assert code == 400 and message in json.loads(body)["error"]
    assert target.read_bytes() == before and not (voc / "Annotations" / HISTORY_DIR).exists()


def test_dota_fix_keeps_header_and_info_reads_it(dota):
    label = dota / "labelTxt" / "P1888.txt"
    before = label.read_bytes()
    with serving(dota) as server:
        c = Client(server)
        assert c.json("GET", "/api/dataset")["shape"] == "polygon"
        i = image_id(c, "P1888")
        rec = c.json("GET", f"/api/images/{i}")
        objects = as_sent(rec, "polygon")
        objects[0]["name"] = "car"
        objects[1]["polygon"][0] = [680, 349]
        c.json("POST", f"/api/images/{i}/save", {"version": rec["version"], "objects": objects})
        objects = as_sent(c.json("GET", f"/api/images/{i}"), "polygon")
        objects[0]["name"] = "small vehicle"  # DOTA cannot hold a space
        code, _, body = c.request("POST", f"/api/images/{i}/save",
                                  body={"version": c.json("GET", f"/api/images/{i}")["version"], "objects": objects})
        assert code == 400 and b"one word" in body
    lines, old = label.read_bytes().split(b"\r\n"), before.split(b"\r\n")
    assert lines[:2] == old[:2] == [b"imagesource:GoogleEarth", b"gsd:0.266170468393"]
    assert lines[2] == b"674 375 683 375 684 394 675 395 car 0"
    assert lines[3] == b"680 349 694 351 695 371 684 371 small-vehicle 0"
    assert lines[4:] == old[4:]
    assert (dota / "labelTxt" / HISTORY_DIR).is_dir()
    info = json.loads(run_cli("info", dota, "--json").output)
    assert info["classes"]["car"] == 1 and info["images"] == 2


# ---- read-only ------------------------------------------------------------------------------------------------------

def test_read_only_data_set_needs_read_only(voc):
    (voc / "Annotations").chmod(0o555)
    try:
        with pytest.raises(UsageError, match="read-only.*--read-only"):
            Review(voc)
        res = run_cli("review", voc, "--no-browser", ok=False)
        assert res.exit_code == 2 and res.output.count("\n") == 1 and res.output.startswith("error: ")
        before = ann(voc, "000001").read_bytes()
        with serving(voc, read_only=True) as server:
            c = Client(server)
            assert not c.json("GET", "/api/dataset")["editable"]
            i = image_id(c, "000001")
            rec = c.json("GET", f"/api/images/{i}")
            assert not rec["editable"]
            objects = as_sent(rec)
            objects[0]["name"] = "cat"
            code, _, body = c.request("POST", f"/api/images/{i}/save",
                                      body={"version": rec["version"], "objects": objects})
            assert code == 403 and b"read-only" in body
        assert ann(voc, "000001").read_bytes() == before
    finally:
        (voc / "Annotations").chmod(0o755)


def test_shared_data_opens_read_only(shared):
    with serving(shared / "voc_sample", read_only=True) as server:
        assert Client(server).json("GET", "/api/dataset")["images"] == 13


def test_packed_file_is_reviewed_read_only(tmp_path):
    root = write_voc_tree(tmp_path / "v", {"a": (60, 40, [("cat", (11, 6, 30, 25))]), "b": (50, 30, [])})
    packed = tmp_path / "p.h5"
    run_cli("voc-to-h5", root, packed, "--quiet")
    with pytest.raises(UsageError, match="packed .* cannot be edited"):
        Review(packed)
    with serving(packed, read_only=True) as server:
        c = Client(server)
        s = c.json("GET", "/api/dataset")
        assert s["images"] == 2 and not s["editable"] and not s["can_save"]
        rec = c.json("GET", "/api/images/0")
        assert rec["version"] is None and rec["objects"][0]["name"] == "cat"
        for path in ("/api/images/0/image", "/api/images/0/thumb", "/api/images/0/objects/0/crop"):
            assert c.get(path)[0] == 200
        code, _, _ = c.request("POST", "/api/images/0/save", body={"version": None, "objects": []})
        assert code == 403


# ---- the command line -----------------------------------------------------------------------------------------------

def test_port_out_of_range_or_busy_is_a_usage_error(voc):
    for port in ("70000", "-1"):
        res = run_cli("review", voc, "--no-browser", "--port", port, ok=False)
        assert res.exit_code == 2 and "out of range" in res.output and res.output.count("\n") == 1
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        res = run_cli("review", voc, "--no-browser", "--port", port, ok=False)
        assert res.exit_code == 2 and res.output == f"error: --port {port}: already in use (leave --port out to " \
                                                    f"take a free port)\n"


def test_missing_data_set_is_one_line(tmp_path):
    res = run_cli("review", tmp_path / "nope", "--no-browser", ok=False)
    assert res.exit_code == 2 and res.output == f"error: {tmp_path / 'nope'}: data set not found\n"


def test_command_serves_until_interrupted(voc):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "dsprep", "review", str(voc), "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()
        assert first.startswith(f"dsprep review: {voc} (voc, 13 images, 37 objects), saving")
        line = proc.stdout.readline()
        m = re.match(r"open (http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]{32}))", line)
        assert m, line
        import urllib.request
        with urllib.request.urlopen(m.group(1), timeout=10) as r:
            assert r.status == 200 and b"dsprep review" in r.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{m.group(2)}/api/dataset?token={m.group(3)}", timeout=10) as r:
            assert json.loads(r.read())["images"] == 13
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert "stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_json_gives_the_url_and_stopping_counts_the_saves(voc):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "dsprep", "review", str(voc), "--no-browser", "--json", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        doc = json.loads(proc.stdout.readline())
        assert doc["format"] == "voc" and doc["images"] == 13 and doc["objects"] == 37 and doc["editable"]
        import urllib.request
        base = doc["url"].split("?")[0]
        token = doc["url"].split("token=")[1]

        def call(path, body=None):
            req = urllib.request.Request(base.rstrip("/") + path, headers={"X-Dsprep-Token": token,
                                                                           "Content-Type": "application/json"},
                                         data=None if body is None else json.dumps(body).encode())
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())

        i = next(it[0] for it in call("/api/images")["items"] if it[1] == "000001")
        rec = call(f"/api/images/{i}")
        objects = as_sent(rec)
        objects[0]["difficult"] = 1
        assert call(f"/api/images/{i}/save", {"version": rec["version"], "objects": objects})["saved"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        err = proc.stderr.read()
        assert f"dsprep review: {voc} (voc, 13 images, 37 objects)" in err and "open http://127.0.0.1:" in err
        assert "stopped; 1 file saved (earlier versions in .dsprep-history/)" in err
        assert proc.stdout.read() == ""  # stdout: the JSON document only
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_broken_file_stops_the_start_unless_skipped(tmp_path):
    root = write_voc_tree(tmp_path / "v", {"a": (60, 40, [("cat", (11, 6, 30, 25))]), "b": (60, 40, [])})
    (root / "Annotations" / "b.xml").write_bytes(b"<annotation><object>")
    res = run_cli("review", root, "--no-browser", ok=False)
    assert res.exit_code == 1 and res.output.startswith("error: ") and "b.xml" in res.output
    assert res.output.count("\n") == 1
    with serving(root, on_error="skip") as server:
        s = Client(server).json("GET", "/api/dataset")
        assert s["images"] == 1 and s["other_problem_count"] == 1
        assert s["other_problems"][0]["kind"] == "unreadable" and s["other_problems"][0]["file"].endswith("b.xml")


def test_coco_is_reviewed_read_only_and_its_file_names_cannot_escape(tmp_path):
    pytest.importorskip("dsprep.coco", reason="the COCO reader (dsprep/coco.py, from the eval branch) is not here")
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    img = cv2.imencode(".jpg", np.full((40, 60, 3), 90, np.uint8))[1].tobytes()
    (tmp_path / "secret.jpg").write_bytes(img)  # outside the data set
    names = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "../../secret.jpg"]  # the reader finds images/ from 5
    for n in names[:5]:
        (root / "images" / n).write_bytes(img)
    doc = {"images": [{"id": i + 1, "file_name": n, "width": 60, "height": 40} for i, n in enumerate(names)],
           "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [5, 5, 20, 10], "area": 200,
                            "iscrowd": 0} for i in range(len(names))]
           + [{"id": 99, "image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 5], "area": 0, "iscrowd": 0}],
           "categories": [{"id": 1, "name": "cat"}]}
    ann = root / "annotations" / "instances_x.json"
    ann.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="cannot save coco annotations yet.*--read-only"):
        Review(ann)
    with serving(ann, read_only=True) as server:
        c = Client(server)
        s = c.json("GET", "/api/dataset")
        # ../../secret.jpg lies outside the data set: refused when read (dsprep.datapaths), so never listed
        assert s["format"] == "coco" and s["images"] == 5 and not s["editable"]
        assert "secret" not in [it[1] for it in c.json("GET", "/api/images")["items"]]
        # the JSON's problem (a zero-width bbox) names the file shared by every image: listed, not pinned on one
        assert s["other_problem_count"] == 1 and s["problem_images"] == 0
        good = image_id(c, "a")
        assert c.get(f"/api/images/{good}/image")[0] == 200 and c.get(f"/api/images/{good}/thumb")[0] == 200
