"""One real browser run: the app in headless Debian Chromium, driven by Playwright.

Starts `streamlit run app.py` on a free localhost port (default model faces64), drags on the
feature-blend canvas and checks that the result image changes. Screenshots go to the test's
tmp dir. `python tests/test_browser.py docs` re-makes the screenshots under docs/ (all pages).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

import toolkit
from toolkit import dataset
from toolkit.parts import segment, shipped
from toolkit.sampling import sample_latents

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_server(workspace: Path, recipes: Path):
    port = _free_port()
    env = {**os.environ, "NCT_WORKSPACE": str(workspace), "NCT_RECIPES_DIR": str(recipes)}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
                    raise RuntimeError(f"streamlit did not start: {out[-2000:]}")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def browser_page(width: int = 1500, height: int = 1300):
    from playwright.sync_api import sync_playwright
    profile = tempfile.mkdtemp(prefix="nct-chromium-")
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=FLAGS,
                                                       headless=True, viewport={"width": width, "height": height})
            try:
                yield ctx.pages[0] if ctx.pages else ctx.new_page()
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def image_src(page, caption_prefix: str) -> str | None:
    """The src of the st.image whose caption starts with `caption_prefix` (None if not shown)."""
    return page.evaluate("""(prefix) => {
        for (const el of document.querySelectorAll('[data-testid="stImage"]')) {
            const cap = el.querySelector('[data-testid="stImageCaption"]');
            const img = el.querySelector('img');
            if (img && cap && cap.textContent.trim().startsWith(prefix)) return img.src;
        }
        return null; }""", caption_prefix)


def wait_for(fn, timeout: float = 90, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def drag(page, canvas, points: list[tuple[float, float]]) -> None:
    """Press, move through `points` (fractions of the canvas), release: one brush stroke or rectangle."""
    box = canvas.bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def open_page(page, url: str, title: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name=title).wait_for(timeout=90_000)


def require_browser() -> None:
    """Skip (with how to fix it) where Debian's chromium or playwright is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium); "
                    ".ci/run does this")
    pytest.importorskip("playwright")


def goto_nav(page, name: str, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(name, exact=True).click()
    page.get_by_role("heading", name=title).wait_for(timeout=90_000)


def test_drag_on_feature_blend_canvas_changes_the_result(tmp_path):
    require_browser()
    (tmp_path / "ws").mkdir()
    (tmp_path / "recipes").mkdir()
    with app_server(tmp_path / "ws", tmp_path / "recipes") as url, browser_page() as page:
        open_page(page, url, "Feature blend")
        canvas = page.locator("canvas").last
        canvas.wait_for(timeout=90_000)
        before = wait_for(lambda: image_src(page, "Result"), what="the result image")
        page.screenshot(path=str(tmp_path / "before.png"), full_page=True)
        drag(page, canvas, [(0.2, 0.35), (0.5, 0.4), (0.8, 0.35), (0.8, 0.45), (0.2, 0.45)])
        after = wait_for(lambda: (s := image_src(page, "Result")) and s != before and s,
                         what="the result image to change after drawing")
        assert after != before
        page.screenshot(path=str(tmp_path / "after.png"), full_page=True)
        assert (tmp_path / "after.png").stat().st_size > 10_000


def no_error_box(page) -> None:
    errors = page.locator('[data-testid="stAlertContentError"], [data-testid="stException"]')
    assert errors.count() == 0, errors.all_inner_texts()


def test_batch_progress_survives_page_switches_and_review_works_from_the_keyboard(tmp_path):
    """Every page opens without an error box; a batch started on the Batch page shows its progress
    again after visiting other pages; Review accepts/rejects with the keyboard into metadata.csv."""
    require_browser()
    ws, rd = tmp_path / "ws", tmp_path / "recipes"
    ws.mkdir()
    rd.mkdir()
    text = (ROOT / "recipes" / "tiny-label-swap.yaml").read_text().replace("count: 32", "count: 16")
    (rd / "tiny-label-swap.yaml").write_text(text)
    with app_server(ws, rd) as url, browser_page() as page:
        open_page(page, url, "Feature blend")
        page.locator("canvas").last.wait_for(timeout=90_000)
        no_error_box(page)
        for name in ("Label swap", "Batch", "Review"):
            goto_nav(page, name, name)
            time.sleep(2)
            no_error_box(page)
        goto_nav(page, "Batch", "Batch")
        page.get_by_label("Batch size").fill("1")
        page.get_by_label("Batch size").press("Enter")
        time.sleep(1)
        page.get_by_test_id("stBaseButton-primary").click()
        page.get_by_test_id("stProgress").first.wait_for(timeout=120_000)
        goto_nav(page, "Review", "Review")
        goto_nav(page, "Label swap", "Label swap")
        goto_nav(page, "Batch", "Batch")
        page.get_by_test_id("stProgress").first.wait_for(timeout=30_000)    # the run is still shown
        page.get_by_text("Review this dataset").wait_for(timeout=180_000)
        page.get_by_text("Review this dataset").click()
        page.get_by_role("heading", name="Review").wait_for(timeout=60_000)
        wait_for(lambda: image_src(page, "#0 "), what="the first row in the gallery")
        page.keyboard.press("a")                                            # accept row 0, move on
        wait_for(lambda: image_src(page, "#1 "), what="the gallery to move to row 1")
        page.keyboard.press("x")                                            # reject row 1
        wait_for(lambda: image_src(page, "#2 "), what="the gallery to move to row 2")
        out = ws / "datasets" / "tiny-label-swap"
        review = wait_for(lambda: (r := list(dataset.read_manifest(out)["review"][:3])) == ["accepted", "rejected",
                                                                                            "pending"] and r,
                          timeout=30, what="metadata.csv to hold the keyboard decisions")
        assert review == ["accepted", "rejected", "pending"]
        page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
        # Download an edited image from an editor: draw, wait for the result, click its download.
        goto_nav(page, "Label swap", "Label swap")
        canvas = page.locator("canvas").last
        canvas.wait_for(timeout=90_000)
        time.sleep(2)
        drag(page, canvas, [(0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7)])
        button = page.get_by_role("button", name="Download result")
        button.wait_for(timeout=90_000)
        with page.expect_download(timeout=60_000) as info:
            button.click()
        saved = tmp_path / "result.png"
        info.value.save_as(str(saved))
        from PIL import Image
        with Image.open(saved) as im:
            assert im.format == "PNG" and im.size[0] == im.size[1] > 1


def steady_box(locator, tries: int = 40) -> dict:
    """The element's box once two looks 0.25 s apart agree (a redrawn image settles its size)."""
    box = locator.bounding_box()
    for _ in range(tries):
        time.sleep(0.25)
        again = locator.bounding_box()
        if again == box and box and box["height"] > 0:
            return box
        box = again
    raise AssertionError(f"the element's box did not settle: {box}")


CLICKS = [(0.36, 0.47), (0.81, 0.31)]     # fractions of the picture (x, y): faces64 seed 0's eyes/mouth, hairline


def click_parts(page, shot: Path) -> list[str]:
    """On the Feature blend page (faces64, source seed 0; a shipped part model): open Parts, click
    the source picture at CLICKS, waiting each time until reference 1's part list follows and the
    picture redraws, then screenshot the result and the Parts panel into `shot`; returns the list."""
    before = wait_for(lambda: image_src(page, "Result"), what="the blend page's result")
    page.get_by_text("Parts: click a part on the source").click()
    picture = page.frame_locator("iframe[title*='image_coordinates']").locator("img#image")
    chips = page.locator(".st-key-blend_parts0 [data-tag]")       # the list of the reference being painted
    for k, (fx, fy) in enumerate(CLICKS):
        picture.wait_for(timeout=60_000)
        box = steady_box(picture)
        shown = picture.get_attribute("src")
        picture.click(position={"x": fx * box["width"], "y": fy * box["height"]})
        wait_for(lambda: chips.count() == k + 1, what=f"click {k + 1} to reach the part list")
        # The picture is redrawn with the new part outlined (and resized in its frame): wait for it.
        wait_for(lambda: picture.get_attribute("src") != shown, what="the picture to outline the part")
    wait_for(lambda: (s := image_src(page, "Result")) and s != before, what="the result to use the parts")
    steady_box(picture)
    top = page.get_by_test_id("stImage").filter(has_text="Result").bounding_box()
    bottom = steady_box(page.get_by_test_id("stExpander").filter(has_text="Parts: click a part"))
    page.screenshot(path=str(shot), full_page=True,
                    clip={"x": 0, "y": top["y"] - 40, "width": page.viewport_size["width"],
                          "height": bottom["y"] + bottom["height"] - top["y"] + 50})
    return [chips.nth(i).get_attribute("aria-label") for i in range(chips.count())]


def test_click_parts_on_the_source_selects_them(tmp_path):
    """The Parts picture is a real click target in Chromium: each click puts the part under the
    pointer in the list of the reference being painted, and the result uses those parts as its region."""
    require_browser()
    (tmp_path / "ws").mkdir()
    (tmp_path / "recipes").mkdir()
    with app_server(tmp_path / "ws", tmp_path / "recipes") as url, browser_page() as page:
        open_page(page, url, "Feature blend")
        page.locator("canvas").last.wait_for(timeout=90_000)
        picked = click_parts(page, tmp_path / "parts.png")
        no_error_box(page)
    g = toolkit.load_generator("faces64", device="cpu")
    pm = shipped(g)
    labels = segment(g, pm, sample_latents(g, [0]))[0]
    want = {pm.names[int(labels[int(fy * 64), int(fx * 64)])] for fx, fy in CLICKS}
    assert len(want) == 2 and picked == sorted(want, key=pm.names.index)
    assert (tmp_path / "parts.png").stat().st_size > 10_000


def make_parts_screenshot(out: Path = ROOT / "docs" / "app_parts_click.png") -> None:
    """docs/app_parts_click.png: two parts clicked on the Feature blend page (run by hand, not a test)."""
    tmp = Path(tempfile.mkdtemp(prefix="nct-shots-"))
    (tmp / "ws").mkdir()
    (tmp / "recipes").mkdir()
    with app_server(tmp / "ws", tmp / "recipes") as url, browser_page(width=1500, height=2000) as page:   # shots must fit the viewport (Streamlit scrolls inside)
        open_page(page, url, "Feature blend")
        page.locator("canvas").last.wait_for(timeout=90_000)
        print("picked:", click_parts(page, out))
    shutil.rmtree(tmp, ignore_errors=True)


def make_photo_preview_screenshot(workspace: Path, out: Path = ROOT / "docs" / "app_photo_recipe_preview.png") -> None:
    """docs/app_photo_recipe_preview.png: the Batch page previewing recipes/terrain64-photos.yaml
    (run by hand; projecting the 16 photos takes minutes on a CPU the first time, then the
    projections are in `workspace`/.cache/projections)."""
    workspace.mkdir(parents=True, exist_ok=True)
    with app_server(workspace, ROOT / "recipes") as url, browser_page(width=1200) as page:
        open_page(page, url, "Feature blend")
        page.locator("canvas").last.wait_for(timeout=90_000)
        goto_nav(page, "Batch", "Batch")
        page.get_by_test_id("stSelectbox").filter(has_text="Recipe").first.click()
        time.sleep(1)          # the list opens
        page.get_by_role("option").filter(has_text="terrain64-photos").first.click()
        page.get_by_text("terrain64-photos: model terrain64").wait_for(timeout=60_000)
        time.sleep(3)          # the previous recipe's switch (its own key) is drawn stale until the rerun ends
        page.get_by_text("Preview the first 4 variants").first.click()
        wait_for(lambda: image_src(page, "#3 "), timeout=3600, what="the preview")
        time.sleep(2)
        top = page.get_by_text("Preview the first 4 variants").first.bounding_box()
        last = page.get_by_test_id("stImage").filter(has_text="#3 ").bounding_box()
        page.screenshot(path=str(out), full_page=True, clip={
            "x": 300, "y": top["y"] - 120, "width": 900, "height": last["y"] + last["height"] - top["y"] + 160})


def make_docs_screenshots(out: Path = ROOT / "docs") -> None:
    """docs/app_*.png: each page with a drawn region and its result (run by hand, not a test)."""
    out.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="nct-shots-"))
    ws, rd = tmp / "ws", tmp / "recipes"
    ws.mkdir()
    rd.mkdir()
    sys.path.insert(0, str(ROOT))
    text = (ROOT / "recipes" / "faces64-parts.yaml").read_text()
    (rd / "faces64-parts.yaml").write_text(text)
    shutil.copytree(ROOT / "recipes" / "masks", rd / "masks")
    shutil.copy(ROOT / "recipes" / "tiny-label-swap.yaml", rd)
    with app_server(ws, rd) as url, browser_page() as page:
        open_page(page, url, "Feature blend")
        canvas = page.locator("canvas").last
        canvas.wait_for(timeout=90_000)
        before = wait_for(lambda: image_src(page, "Result"), what="result")
        drag(page, canvas, [(0.17, 0.36), (0.83, 0.36), (0.83, 0.43), (0.17, 0.43), (0.17, 0.48), (0.83, 0.48)])
        wait_for(lambda: (s := image_src(page, "Result")) and s != before, what="blend result")
        time.sleep(1)
        page.screenshot(path=str(out / "app_feature_blend.png"), full_page=True)

        # Label swap opens on the embedded class-conditional materials model (terrain64).
        goto_nav(page, "Label swap", "Label swap")
        canvas = page.locator("canvas").last
        canvas.wait_for(timeout=90_000)
        time.sleep(3)          # let the first render of the newly loaded model settle
        before = wait_for(lambda: image_src(page, "Result"), what="swap result")
        drag(page, canvas, [(0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7), (0.3, 0.35), (0.6, 0.6)])
        wait_for(lambda: (s := image_src(page, "Result")) and s != before, what="swap result change")
        time.sleep(1)
        page.screenshot(path=str(out / "app_label_swap.png"), full_page=True)

        goto_nav(page, "Batch", "Batch")
        page.get_by_test_id("stBaseButton-primary").click()
        page.get_by_text("Review this dataset").wait_for(timeout=120_000)
        time.sleep(1)
        page.screenshot(path=str(out / "app_batch.png"), full_page=True)
        names = list(dataset.read_manifest(ws / "datasets" / "faces64-parts")["file_name"])
        dataset.update_review(ws / "datasets" / "faces64-parts",
                              {n: ("accepted" if i % 3 else "rejected") for i, n in enumerate(names[:12])})

        goto_nav(page, "Review", "Review")
        wait_for(lambda: image_src(page, "#0 "), what="the gallery")
        time.sleep(2)
        page.screenshot(path=str(out / "app_review.png"), full_page=True)
        page.get_by_text("Table", exact=True).click()
        time.sleep(3)
        page.screenshot(path=str(out / "app_review_table.png"), full_page=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__" and sys.argv[1:] == ["docs"]:
    make_docs_screenshots()
if __name__ == "__main__" and sys.argv[1:] == ["parts"]:
    make_parts_screenshot()
if __name__ == "__main__" and sys.argv[1:2] == ["photo-preview"]:
    make_photo_preview_screenshot(Path(sys.argv[2] if sys.argv[2:] else "workspace").resolve())
