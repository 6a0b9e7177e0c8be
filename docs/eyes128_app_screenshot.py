"""Makes docs/app_label_swap_eyes128.png: the app's Label swap page with eyes128 picked in the sidebar,
source seed 52 of class brown, target red, a rectangle over the middle of the eye.

Run by hand (`python docs/eyes128_app_screenshot.py [out.png]`); needs Debian Chromium and Python
playwright (see tests/test_browser.py, whose server and browser helpers it reuses) and the eyes128
weights in the cache (`python -m toolkit fetch eyes128`).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_browser import app_server, browser_page, drag, goto_nav, image_src, open_page, wait_for  # noqa: E402


def main(out: str = str(ROOT / "docs" / "app_label_swap_eyes128.png")) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="nct-eyes-shot-"))
    (tmp / "ws").mkdir()
    (tmp / "rd").mkdir()
    try:
        with app_server(tmp / "ws", tmp / "rd") as url, browser_page() as page:
            open_page(page, url, "Feature blend")
            goto_nav(page, "Label swap", "Label swap")
            page.locator("canvas").last.wait_for(timeout=90_000)
            sidebar = page.get_by_test_id("stSidebar")
            sidebar.get_by_test_id("stSelectbox").first.click()
            page.get_by_role("option", name="eyes128 (zoo)").click()
            wait_for(lambda: page.get_by_text("4×4 grid").count() > 0, timeout=180, what="eyes128 on the page")
            seed = sidebar.get_by_test_id("stNumberInput").first.locator("input")
            seed.fill("52")
            seed.press("Enter")
            page.wait_for_timeout(3000)
            page.get_by_test_id("stMain").get_by_test_id("stSelectbox").first.click()
            page.get_by_role("option", name="brown (2)").click()
            page.wait_for_timeout(3000)
            targets = page.get_by_test_id("stMultiSelect").first
            if targets.get_by_role("button", name="Clear all").count():
                targets.get_by_role("button", name="Clear all").click()
                page.wait_for_timeout(2000)
            targets.click()
            page.get_by_role("option", name="red").click()
            page.keyboard.press("Escape")
            page.wait_for_timeout(4000)
            page.get_by_text("rectangle", exact=True).first.click()
            page.wait_for_timeout(2000)
            before = wait_for(lambda: image_src(page, "Result"), what="result")
            drag(page, page.locator("canvas").last, [(0.3, 0.3), (0.7, 0.7)])
            wait_for(lambda: (s := image_src(page, "Result")) and s != before, timeout=120, what="swap result")
            wait_for(lambda: all(image_src(page, f"strength {v:.2f}") for v in (0, 0.25, 0.5, 0.75, 1.0)),
                     timeout=180, what="morph strip")
            wait_for(lambda: page.get_by_text("Stop", exact=True).count() == 0, timeout=120, what="run finished")
            page.wait_for_timeout(2000)
            page.screenshot(path=out, full_page=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    print(main(*sys.argv[1:]))
