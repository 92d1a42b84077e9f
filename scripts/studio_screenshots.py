"""Screenshots of the studio's main views for docs/ (docs/studio.md, the README), taken in Debian's chromium against
a real `soundsmith serve` making real sounds with the bundled demo model.

    python scripts/studio_screenshots.py                 # → docs/studio-{desktop,edit,phone,phone-sounds}.png
    python scripts/studio_screenshots.py --models demo --out docs

It drives the page as a person would: types three prompts and presses Generate, stars one, drags across the
spectrogram of another and regenerates that span, then photographs a laptop view (1366×768), the edit tools
open on a selection, and a phone's (390×844) first screen and sound list. About two minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # serving.py: the server subprocess; browser.py: the chromium launch

from browser import chromium  # noqa: E402
from serving import Server  # noqa: E402

PROMPTS = ["church bells ringing in the distance", "a piano playing a slow melody", "a dog barking"]
EDIT_PROMPT = "a piano chord"
JOB_TIMEOUT_MS = 600_000


def generate(page, prompt: str, seed: int) -> None:
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_label("Seed", exact=True).fill(str(seed))
    page.get_by_role("button", name="Generate").click()


def card(page, title: str):
    return page.locator("#sound-list .card", has=page.locator("h3.title", has_text=title)).first


def wait_done(page, title: str):
    found = card(page, title)
    found.wait_for(timeout=JOB_TIMEOUT_MS)
    page.wait_for_function("c => c.dataset.status === 'succeeded'", arg=found.element_handle(), timeout=JOB_TIMEOUT_MS)
    pictures = found.locator(".picture").first
    pictures.scroll_into_view_if_needed()
    page.wait_for_function("p => (p.firstElementChild?.shadowRoot?.querySelectorAll('canvas').length || 0) >= 2",
                           arg=pictures.element_handle(), timeout=60_000)
    return found


def drag_span(page, found, start: float, end: float) -> None:
    """Drag across the lower half of a card's picture (its spectrogram) from `start` to `end` (fractions of width)."""
    picture = found.locator(".picture").first
    picture.scroll_into_view_if_needed()
    box = picture.bounding_box()
    y = box["y"] + box["height"] * 0.7
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * end, y, steps=10)
    page.mouse.up()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="demo", help="the model `soundsmith serve --models` serves (default demo)")
    parser.add_argument("--out", default=str(REPO / "docs"), help="folder for the PNG files (default docs/)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="studio-shots-") as tmp, chromium() as browser:
        server = Server(Path(args.models), Path(tmp) / "data").start()
        try:
            shoot(browser, server, out)
        finally:
            server.stop()
    for name in ("studio-desktop.png", "studio-edit.png", "studio-phone.png", "studio-phone-sounds.png"):
        print(out / name)
    return 0


def shoot(browser, server, out: Path) -> None:
    """Make the sounds through the page and photograph the views."""
    desktop = browser.new_page(viewport={"width": 1366, "height": 768})
    desktop.goto(server.url)
    desktop.wait_for_selector("body[data-ready]")
    for seed, prompt in enumerate(PROMPTS, start=1):
        generate(desktop, prompt, seed)
    for prompt in PROMPTS:
        wait_done(desktop, prompt)
    card(desktop, PROMPTS[0]).get_by_role("button", name="Star").click()
    piano = card(desktop, PROMPTS[1])
    piano.locator("details.edit summary").click()
    drag_span(desktop, piano, 0.35, 0.6)
    piano.locator(".edit-prompt").fill(EDIT_PROMPT)
    piano.get_by_role("button", name="Regenerate selection").click()
    wait_done(desktop, f"inpaint: {EDIT_PROMPT}")
    piano.locator("details.edit summary").click()  # closed again: the laptop view shows the list
    wait_done(desktop, PROMPTS[0])
    desktop.get_by_label("Prompt", exact=True).fill("rain on a tin roof, distant thunder")
    desktop.evaluate("window.scrollTo(0, 0)")
    desktop.screenshot(path=str(out / "studio-desktop.png"))

    edited = card(desktop, f"inpaint: {EDIT_PROMPT}")
    edited.locator("details.edit summary").click()
    drag_span(desktop, edited, 0.35, 0.6)
    edited.scroll_into_view_if_needed()
    edited.screenshot(path=str(out / "studio-edit.png"))

    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                              has_touch=True)
    phone.goto(server.url)
    phone.wait_for_selector("body[data-ready]")
    phone.get_by_label("Prompt", exact=True).fill("rain on a tin roof, distant thunder")
    phone.screenshot(path=str(out / "studio-phone.png"))
    for i in range(2):
        shown = phone.locator("#sound-list .card").nth(i)
        shown.scroll_into_view_if_needed()
        phone.wait_for_function("p => (p.firstElementChild?.shadowRoot?.querySelectorAll('canvas').length || 0)"
                                " >= 2", arg=shown.locator(".picture").element_handle(), timeout=60_000)
    phone.evaluate("document.querySelector('#sounds').scrollIntoView()")
    phone.screenshot(path=str(out / "studio-phone-sounds.png"))


if __name__ == "__main__":
    sys.exit(main())
