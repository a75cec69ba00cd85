"""The web app (contrafuse serve): the HTTP API's good path and each bad upload, and the page in a
real browser (Playwright driving Debian's chromium)."""

import io
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import dataset
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient

from contrafuse.web.app import create_app

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app())


@pytest.fixture(scope="module")
def tno():
    folder = dataset("TNO_CoCoNet")
    return folder / "ir" / "TNO_001.png", folder / "vis" / "TNO_001.png"


def upload(path_or_bytes, name="x.png"):
    data = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    return (name, io.BytesIO(data), "application/octet-stream")


def png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_fuse_returns_a_png_of_the_inputs_size(client, tno):
    r = client.post("/api/fuse", files={"ir": upload(tno[0]), "vis": upload(tno[1])}, data={"method": "gff"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    fused = Image.open(io.BytesIO(r.content))
    assert fused.size == Image.open(tno[0]).size
    # the same as the library's result
    from contrafuse import fuse
    expected = np.round(fuse(str(tno[0]), str(tno[1]), method="gff") * 255)
    assert np.abs(np.asarray(fused, float) - expected).max() <= 1


def test_evaluate_returns_metrics(client, tno):
    r = client.post("/api/evaluate", files={"ir": upload(tno[0]), "vis": upload(tno[1])},
                    data={"method": "average", "metrics": "EN,SD"})
    assert r.status_code == 200
    body = r.json()
    assert set(body["metrics"]) == {"EN", "SD"} and 0 < body["metrics"]["EN"] <= 8
    assert body["convention"] == "standard" and body["higher_is_better"]["EN"] is True


def test_fuse_takes_the_recolour_rule(client):
    """The API's ``recolour`` is the CLI's ``--recolour`` (hand-checked there): grey 0.9 with pure red,
    fused by ``maximum``, is (255, 154, 154) under ``clip`` and (255, 219, 219) keeping the luma."""
    ir = png(np.full((8, 8), 230, np.uint8))
    vis = png(np.dstack([np.full((8, 8), 255, np.uint8), np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)]))
    greens = {}
    for rule in ("clip", "keep_luma", ""):
        r = client.post("/api/fuse", files={"ir": upload(ir, "ir.png"), "vis": upload(vis, "vis.png")},
                        data={"method": "maximum", "recolour": rule})
        assert r.status_code == 200, r.text
        greens[rule] = int(np.asarray(Image.open(io.BytesIO(r.content)))[0, 0, 1])
    assert greens["clip"] == 154 and abs(greens["keep_luma"] - 219) <= 1 and greens[""] == greens["keep_luma"]
    r = client.post("/api/fuse", files={"ir": upload(ir, "ir.png"), "vis": upload(vis, "vis.png")},
                    data={"method": "maximum", "recolour": "grey"})
    assert r.status_code == 400 and "unknown recolour rule 'grey'" in r.json()["error"]


def test_evaluate_fuses_with_the_same_options_as_fuse(client, rng):
    """``/api/evaluate`` with a ``method`` and a ``recolour`` rule scores what ``/api/fuse`` returns
    under that rule; the two rules give different fused images, so different scores."""
    ir = png((rng.random((32, 32)) * 255).astype(np.uint8))
    vis = png((rng.random((32, 32, 3)) * [255, 60, 60]).astype(np.uint8))
    sources = lambda: {"ir": upload(ir, "ir.png"), "vis": upload(vis, "vis.png")}  # noqa: E731
    scores = {}
    for rule in ("clip", "keep_luma"):
        fused = client.post("/api/fuse", files=sources(), data={"method": "maximum", "recolour": rule})
        given = client.post("/api/evaluate", files={**sources(), "fused": upload(fused.content, "fused.png")},
                            data={"metrics": "SD,AG"})
        fused_here = client.post("/api/evaluate", files=sources(),
                                 data={"method": "maximum", "recolour": rule, "metrics": "SD,AG"})
        assert given.status_code == fused_here.status_code == 200, fused_here.text
        scores[rule] = fused_here.json()["metrics"]
        assert scores[rule] == pytest.approx(given.json()["metrics"], rel=1e-9)
    assert scores["clip"]["SD"] != pytest.approx(scores["keep_luma"]["SD"], rel=1e-3)


@pytest.mark.parametrize("case, status, fragment", [
    ("not an image", 400, "not a readable image"),
    ("empty", 400, "empty"),
    ("sizes", 400, "differs"),
    ("method", 400, "unknown method"),
    ("missing", 400, "no file uploaded"),
    ("too large", 413, "upload limit"),
    ("too many pixels", 413, "pixel limit"),
])
def test_bad_uploads_get_a_4xx_with_a_json_error(client, tno, monkeypatch, case, status, fragment):
    files = {"ir": upload(tno[0], "ir.png"), "vis": upload(tno[1], "vis.png")}
    data = {"method": "gff"}
    if case == "not an image":
        files["vis"] = upload(b"hello, not a png", "notes.png")
    elif case == "empty":
        files["ir"] = upload(b"", "blank.png")
    elif case == "sizes":
        files["vis"] = upload(png(np.zeros((20, 30), np.uint8)), "small.png")
    elif case == "method":
        data["method"] = "magic"
    elif case == "missing":
        del files["vis"]
    elif case == "too large":
        monkeypatch.setenv("CONTRAFUSE_WEB_MAX_UPLOAD", "1000")
    elif case == "too many pixels":
        monkeypatch.setenv("CONTRAFUSE_MAX_PIXELS", "1000")
    r = client.post("/api/fuse", files=files, data=data)
    assert r.status_code == status, r.text
    assert fragment in r.json()["error"]


def test_page_and_lists(client):
    assert client.get("/").status_code == 200 and "contrafuse" in client.get("/").text
    names = [m["name"] for m in client.get("/api/methods").json()]
    assert "coconet" in names and "gff" in names
    assert any(m["name"] == "VIFF" for m in client.get("/api/metrics").json())


@pytest.fixture(scope="module")
def server():
    import uvicorn
    listening = socket.socket()  # bound here and handed over: no other process can take the port between
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning"))
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    for _ in range(600):  # up to a minute on a loaded 2-core machine
        if instance.started:
            break
        time.sleep(0.1)
    assert instance.started, "the test server did not start within a minute"
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)
    listening.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_page_in_a_real_browser(server, tno, tmp_path):
    """Load the page, upload a TNO pair, run two methods, see both results with metrics, download one;
    fails if the page shows an error."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        page.set_default_timeout(120_000)  # a cold browser on a loaded 2-core machine
        page.goto(server)
        page.wait_for_selector("#run:enabled")  # the method and metric lists are loaded
        page.set_input_files("#ir", str(tno[0]))
        page.set_input_files("#vis", str(tno[1]))
        for box in page.query_selector_all("input[name=method]:checked"):
            box.uncheck()
        page.check("input[name=method][value=gff]")
        page.check("input[name=method][value=average]")
        page.click("#run")
        page.wait_for_selector("text=done: 2 method(s)", timeout=120_000)
        assert not page.is_visible("[data-testid=error]"), page.inner_text("[data-testid=error]")
        for method in ("gff", "average"):
            card = page.locator(f"[data-label='result: {method}']")
            assert card.locator("img").evaluate("img => img.decode().then(() => img.naturalWidth)") == Image.open(tno[0]).size[0]
            assert "EN" in card.inner_text()
        with page.expect_download() as info:
            page.click("[data-label='result: gff'] a.download")
        saved = tmp_path / "download.png"
        info.value.save_as(saved)
        assert Image.open(saved).size == Image.open(tno[0]).size
        if os.environ.get("CONTRAFUSE_SCREENSHOT"):  # the README's picture
            page.screenshot(path=os.environ["CONTRAFUSE_SCREENSHOT"], full_page=True)
        # a new source clears the results of the old pair
        page.set_input_files("#ir", str(tno[1]))
        assert page.locator("[data-label^='result']").count() == 0
        assert all(not o.startswith("result") for o in page.eval_on_selector_all("#cmp-a option", "os => os.map(o => o.value)"))
        # a bad upload shows its message in the page
        (tmp_path / "notes.png").write_text("not an image")
        page.set_input_files("#vis", str(tmp_path / "notes.png"))
        page.click("#run")
        page.wait_for_selector("[data-testid=error]:visible", timeout=60_000)
        assert "notes.png" in page.inner_text("[data-testid=error]")
        browser.close()
