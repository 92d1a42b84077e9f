"""The studio (issue 15) in a real browser: Debian's chromium under Playwright, against the real `soundsmith serve`
(a subprocess on a free loopback port, a tiny random-weight model with a 10 ms-hop vocoder, a temporary --data).

A person's path through the page: type a prompt and press Generate, hear the result (the <audio> loads and plays),
drag across its picture and regenerate that span, reload and restart the server and find both sounds; a bad
duration shows the API's own words next to the Duration control. Skipped only when chromium is absent
(scripts/install-browser-deps installs it; CI runs it).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from browser import CHROMIUM

JOB_TIMEOUT_MS = 180_000  # one tiny job takes seconds; the machine is shared
SECONDS = 2.0
STEPS = 3

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason=f"{CHROMIUM} is absent: scripts/install-browser-deps installs it")


# ---- the page's files, served without a browser -------------------------------------------------------------------

def test_page_is_served_at_root_with_every_asset_local():
    """GET / is the page; every file it loads (links, scripts, ES module imports) is served from the package, none
    from another host, and the folder's Python is not served."""
    pytest.importorskip("fastapi")
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from soundsmith import studio

    app = FastAPI()
    studio.mount(app)
    client = TestClient(app)
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    wanted = ["/" + ref for ref in re.findall(r'(?:href|src)="(studio/[^"]+)"', page.text)]
    seen = set()
    while wanted:
        path = wanted.pop()
        if path in seen:
            continue
        seen.add(path)
        response = client.get(path)
        assert response.status_code == 200, path
        if path.endswith(".js"):
            assert "javascript" in response.headers["content-type"], path
            base = path.rsplit("/", 1)[0]
            for ref in re.findall(r'(?:import|from)\s*["\']([^"\']+)["\']', response.text):
                assert ref.startswith("."), f"{path} imports {ref} from outside the package"
                wanted.append(_join(base, ref))
    assert {"/studio/js/app.js", "/studio/studio.css", "/studio/vendor/wavesurfer/wavesurfer.esm.js",
            "/studio/vendor/wavesurfer/plugins/regions.esm.js",
            "/studio/vendor/wavesurfer/plugins/spectrogram.esm.js"} <= seen
    for text in (page.text, *(client.get(p).text for p in seen)):
        assert not re.search(r'(?:src|href)\s*=\s*["\']https?://', text)
    assert client.get("/studio/__init__.py").status_code == 404
    assert client.get("/studio/../__init__.py").status_code == 404


def _join(base: str, ref: str) -> str:
    parts = base.split("/")
    for piece in ref.split("/"):
        if piece == "..":
            parts.pop()
        elif piece != ".":
            parts.append(piece)
    return "/".join(parts)


def test_jobs_can_be_starred_and_searched_by_prompt_over_http(server):
    """The API the studio's star and search use: PATCH /v1/jobs/{id} {"starred": …}; GET /v1/jobs?q=&starred=."""
    with server.client() as client:
        ids = {}
        for prompt in ("Rain on 100% tin_roof", "a distant siren"):
            job = client.post("/v1/jobs", json={"prompt": prompt, "duration": SECONDS, "steps": 200}).json()
            client.delete(f"/v1/jobs/{job['id']}")  # nothing needs to run
            ids[prompt] = job["id"]
        rain = ids["Rain on 100% tin_roof"]
        assert client.get(f"/v1/jobs/{rain}").json()["starred"] is False
        starred = client.patch(f"/v1/jobs/{rain}", json={"starred": True})
        assert starred.status_code == 200 and starred.json()["starred"] is True

        def listed(**params):
            return [j["id"] for j in client.get("/v1/jobs", params={"limit": 500, **params}).json()["jobs"]]

        assert rain in listed(starred="true") and ids["a distant siren"] not in listed(starred="true")
        assert rain not in listed(starred="false")
        assert listed(q="RAIN ON") == [rain]  # any case
        assert listed(q="100%") == [rain] and listed(q="tin_r") == [rain] and listed(q="on_1") == []  # % and _ literal
        assert listed(q="siren", starred="true") == []
        assert client.patch(f"/v1/jobs/{rain}", json={"starred": False}).json()["starred"] is False
        for bad in ({"starred": "yes"}, {"starred": True, "prompt": "x"}, [True]):
            answer = client.patch(f"/v1/jobs/{rain}", json=bad)
            assert answer.status_code == 422 and "starred" in answer.json()["detail"]
        answer = client.get("/v1/jobs", params={"starred": "maybe"})
        assert answer.status_code == 422 and answer.json()["detail"].startswith("starred=")
        assert client.patch("/v1/jobs/job_0000000000000000", json={"starred": True}).status_code == 404


# ---- in the browser -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tiny_10ms, tmp_path_factory):
    from serving import Server

    running = Server(tiny_10ms, tmp_path_factory.mktemp("studio") / "data").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent: scripts/install-browser-deps installs it")
    pytest.importorskip("playwright")
    import browser

    with browser.chromium() as running:
        yield running


@pytest.fixture
def page(chromium, server):
    context = chromium.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready]")
    yield page
    context.close()
    assert not errors, errors


def _api(server, method: str, path: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _make(page, prompt: str, *, seed: int | None = None, submit: str = "click"):
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_label("Duration (s)").fill(str(SECONDS))
    page.get_by_label("Steps").fill(str(STEPS))
    if seed is not None:
        page.get_by_label("Seed", exact=True).fill(str(seed))
    if submit == "click":
        page.get_by_role("button", name="Generate").click()
    else:
        page.get_by_label("Prompt", exact=True).press("Control+Enter")


def _card(page, prompt: str):
    return page.locator("#sound-list .card", has=page.locator("h3.title", has_text=prompt))


def _loaded_duration(page, audio) -> float:
    """An <audio>'s duration (s) once its metadata is in, read by the same poll that sees it: reading it again through
    the locator may find a newer element (a card re-rendered when another job lands), not yet loaded (NaN)."""
    return page.wait_for_function("a => a.readyState >= 1 && a.duration > 0 ? a.duration : 0",
                                  arg=audio.element_handle(), timeout=30_000).json_value()


def _wait_succeeded(page, prompt: str):
    """The newest card titled `prompt`, once its job succeeded, pinned by job id (cards that join the list later,
    "again" with the same title for one, do not move it)."""
    card = _card(page, prompt).first
    card.locator("audio").first.wait_for(state="attached", timeout=JOB_TIMEOUT_MS)
    card = page.locator(f'#sound-list .card[data-job="{card.get_attribute("data-job")}"]')
    page.wait_for_function("card => card.dataset.status === 'succeeded'", arg=card.element_handle(),
                           timeout=JOB_TIMEOUT_MS)
    return card


@needs_chromium
def test_generate_shows_progress_then_a_result_that_loads_and_plays(page, server):
    _make(page, "a dog barking in the rain", seed=11)
    queued = page.locator("#queue-list li", has_text="a dog barking in the rain")
    queued.wait_for(timeout=10_000)  # in the queue at once, with a Cancel button
    assert queued.get_by_role("button", name=re.compile("Cancel")).is_visible()
    card = _wait_succeeded(page, "a dog barking in the rain")
    audio = card.locator("audio").first
    assert abs(_loaded_duration(page, audio) - SECONDS) < 0.05
    audio.evaluate("a => a.play()")
    page.wait_for_function("a => a.currentTime > 0", arg=audio.element_handle(), timeout=15_000)
    assert "seed 11" in card.locator(".settings").inner_text()
    # the picture: a waveform and a spectrogram drawn from the audio
    page.wait_for_function("p => p.querySelectorAll('canvas').length + "
                           "(p.firstElementChild?.shadowRoot?.querySelectorAll('canvas').length || 0) >= 2",
                           arg=card.locator(".picture").element_handle(), timeout=30_000)
    assert page.locator("#queue-list li", has_text="a dog barking in the rain").count() == 0


@needs_chromium
def test_dragging_across_the_picture_regenerates_that_span(page, server):
    _make(page, "a piano playing a slow melody", seed=5)
    card = _wait_succeeded(page, "a piano playing a slow melody")
    card.locator("details.edit summary").first.click()
    picture = card.locator(".picture").first
    picture.scroll_into_view_if_needed()
    page.wait_for_function("p => (p.firstElementChild?.shadowRoot?.querySelectorAll('canvas').length || 0) >= 1",
                           arg=picture.element_handle(), timeout=30_000)
    box = picture.bounding_box()
    y = box["y"] + box["height"] * 0.75  # on the spectrogram
    page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=8)
    page.mouse.up()
    start = float(card.locator(".sel-start").first.input_value())
    end = float(card.locator(".sel-end").first.input_value())
    assert abs(start - 0.25 * SECONDS) < 0.1 and abs(end - 0.5 * SECONDS) < 0.1
    card.locator(".edit-prompt").first.fill("a piano chord")
    card.get_by_role("button", name="Regenerate selection").first.click()
    edited = _wait_succeeded(page, "inpaint: a piano chord")
    status, listed = _api(server, "GET", "/v1/jobs?limit=50")
    jobs = listed["jobs"] if isinstance(listed, dict) else listed
    job = next(j for j in jobs if j["request"].get("task") == "inpaint")
    assert job["request"]["masks"] == [[pytest.approx(start), pytest.approx(end)]]
    audio = edited.locator("audio").first
    assert abs(_loaded_duration(page, audio) - SECONDS) < 0.05


@needs_chromium
def test_again_vary_extend_upscale_and_downloads_from_a_result(page, server):
    _make(page, "a clock ticking", seed=21)
    card = _wait_succeeded(page, "a clock ticking")
    for name in ("Download WAV", "Download FLAC"):
        link = card.get_by_role("link", name=name)
        answer = page.request.get(server.url + link.get_attribute("href").replace(server.url, ""))
        assert answer.ok and answer.headers["content-type"] == f"audio/{name.split()[-1].lower()}"
        assert link.get_attribute("download").endswith(name.split()[-1].lower())
    card.get_by_role("button", name="Again with this seed").click()
    card.get_by_role("button", name="Vary seed").click()
    card.locator("details.edit summary").click()
    card.locator(".extend-seconds").fill("1")
    card.get_by_role("button", name="Extend").click()
    card.get_by_label("Cutoff (Hz)").fill("4000")  # the tiny model's sounds fill the band: nothing to detect
    card.get_by_role("button", name="Upscale").click()
    extended = _wait_succeeded(page, "extend: a clock ticking")
    audio = extended.locator("audio").first
    assert abs(_loaded_duration(page, audio) - (SECONDS + 1)) < 0.05
    _wait_succeeded(page, "upscale: a clock ticking")
    page.wait_for_function("() => document.querySelectorAll('#sound-list .card[data-status=succeeded]')"
                           ".length >= 5 && !document.querySelector('#queue-list li')", timeout=JOB_TIMEOUT_MS)
    status, listed = _api(server, "GET", "/v1/jobs?limit=5&q=a%20clock%20ticking")
    seeds = {j["request"]["task"] + ("" if j["request"]["seed"] == 21 else " new seed") for j in listed["jobs"]}
    assert seeds == {"generate", "generate new seed", "extend new seed", "upscale new seed"}
    assert sum(j["request"]["task"] == "generate" and j["request"]["seed"] == 21 for j in listed["jobs"]) == 2


@needs_chromium
def test_bad_duration_shows_the_apis_message_next_to_duration(page, server):
    page.get_by_label("Prompt", exact=True).fill("a bell ringing")
    page.get_by_label("Duration (s)").fill("99999")
    page.get_by_label("Prompt", exact=True).press("Control+Enter")  # the keyboard way to Generate
    message = page.locator("#err-duration")
    message.wait_for(state="visible", timeout=10_000)
    model = page.get_by_label("Model").input_value()
    status, body = _api(server, "POST", "/v1/jobs", {"prompt": "a bell ringing", "model": model, "duration": 99999})
    assert 400 <= status < 500
    assert message.inner_text() == body["detail"]
    assert page.get_by_label("Duration (s)").get_attribute("aria-invalid") == "true"
    assert page.locator("#err-generate").inner_text() == ""


@needs_chromium
def test_history_survives_reload_and_restart_and_is_searchable(page, server):
    for prompt in ("a dog barking in the rain", "a piano playing a slow melody"):
        if not _card(page, prompt).count():
            _make(page, prompt, seed=3)
            _wait_succeeded(page, prompt)
    server.stop()
    server.start()
    page.goto(server.url)
    page.wait_for_selector("body[data-ready]")
    for prompt in ("a dog barking in the rain", "a piano playing a slow melody"):
        card = _card(page, prompt).first
        card.wait_for()
        audio = card.locator("audio").first
        page.wait_for_function("a => a.duration > 0", arg=audio.element_handle(), timeout=30_000)
    titles = page.locator("#sound-list h3.title").all_inner_texts()
    ids = page.locator("#sound-list .card").evaluate_all("cards => cards.map(c => c.dataset.job)")
    status, listed = _api(server, "GET", f"/v1/jobs?limit={len(ids)}")
    jobs = listed["jobs"] if isinstance(listed, dict) else listed
    assert ids == [j["id"] for j in jobs]  # newest first, as the server lists them
    page.get_by_label("Search prompts").fill("piano")
    page.wait_for_function("() => [...document.querySelectorAll('#sound-list h3.title')]"
                           ".every(t => /piano/i.test(t.textContent))")
    assert page.locator("#sound-list .card").count() >= 1
    assert len(titles) >= 2


@needs_chromium
def test_a_new_search_keeps_a_listed_sound_playing(page, server):
    """Searching lists the sounds afresh; a card listed again keeps its <audio> element, so the sound someone is
    listening to plays on (it used to be rebuilt, stopping playback), and the cards no longer listed go."""
    _make(page, "a bird singing at dawn", seed=6)
    _wait_succeeded(page, "a bird singing at dawn")
    _make(page, "a cat purring loudly", seed=4)
    card = _wait_succeeded(page, "a cat purring loudly")
    audio = card.locator("audio").first
    _loaded_duration(page, audio)
    playing = audio.element_handle()
    playing.evaluate("a => { a.loop = true; a.dataset.mark = 'listening'; return a.play(); }")
    page.wait_for_function("a => a.currentTime > 0", arg=playing, timeout=15_000)
    page.get_by_label("Search prompts").fill("purring")
    page.wait_for_function("() => ![...document.querySelectorAll('#sound-list h3.title')]"
                           ".some(t => /bird/i.test(t.textContent))", timeout=30_000)
    assert playing.evaluate("a => a.isConnected && !a.paused && a.dataset.mark === 'listening'")
    before = playing.evaluate("a => a.currentTime")
    page.wait_for_function("([a, t]) => a.currentTime !== t && !a.paused", arg=[playing, before], timeout=15_000)
    page.get_by_label("Search prompts").fill("")
    _card(page, "a bird singing at dawn").first.wait_for(timeout=30_000)
    assert playing.evaluate("a => a.isConnected && !a.paused")
    playing.evaluate("a => a.pause()")


@needs_chromium
def test_star_keeps_a_sound_and_the_starred_filter_finds_it(page, server):
    _make(page, "a cat meowing", seed=2)
    card = _wait_succeeded(page, "a cat meowing")
    star = card.get_by_role("button", name="Star")
    star.click()
    page.wait_for_function("b => b.getAttribute('aria-pressed') === 'true'", arg=star.element_handle())
    page.reload()
    page.wait_for_selector("body[data-ready]")
    page.get_by_label("Starred only").check()
    page.wait_for_function("() => document.querySelectorAll('#sound-list .card').length === 1")
    assert "a cat meowing" in page.locator("#sound-list .card h3").inner_text()
    assert page.locator("#sound-list .card .star").get_attribute("aria-pressed") == "true"


@needs_chromium
@pytest.mark.parametrize("width,height", [(1366, 768), (390, 844)])
def test_page_fits_laptop_and_phone_widths_and_every_control_is_labelled(chromium, server, width, height):
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(server.url)
    page.wait_for_selector("body[data-ready]")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
        .filter(c => !c.closest('template') && c.type !== 'file' && c.offsetParent !== null)
        .filter(c => !(c.labels && c.labels.length) && !c.getAttribute('aria-label') && !c.textContent.trim())
        .map(c => c.outerHTML)""")
    assert unlabelled == []
    context.close()


@needs_chromium
def test_an_uploaded_clip_is_edited_like_a_result(page, server, tmp_path):
    import numpy as np
    import soundfile as sf

    t = np.arange(int(16000 * SECONDS)) / 16000
    sf.write(tmp_path / "hum.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 16000)
    page.locator("#upload").set_input_files(str(tmp_path / "hum.wav"))
    clip = page.locator("#clip-list .card", has_text="hum.wav")
    clip.wait_for(timeout=30_000)
    audio = clip.locator("audio")
    page.wait_for_function("a => a.duration > 0", arg=audio.element_handle(), timeout=30_000)
    clip.locator("details.edit summary").click()
    clip.get_by_role("button", name="Transfer").click()  # no prompt yet: the API says so, next to the prompt
    missing = clip.locator(".err-edit-prompt")
    missing.wait_for(state="visible", timeout=10_000)
    assert "prompt" in missing.inner_text()
    clip.locator(".edit-prompt").fill("an organ drone")
    clip.locator(".strength").fill("0.7")
    clip.get_by_role("button", name="Transfer").click()
    _wait_succeeded(page, "transfer: an organ drone")
    status, listed = _api(server, "GET", "/v1/jobs?limit=50")
    jobs = listed["jobs"] if isinstance(listed, dict) else listed
    job = next(j for j in jobs if j["request"].get("task") == "transfer")
    assert job["request"]["strength"] == pytest.approx(0.7)


@needs_chromium
def test_a_recording_from_the_microphone_becomes_a_clip_the_server_accepts(page, server):
    record = page.get_by_role("button", name="Record")
    record.click()
    page.wait_for_function("() => document.querySelector('#record').getAttribute('aria-pressed') === 'true'")
    page.wait_for_timeout(1500)
    page.get_by_role("button", name="Stop recording").click()
    clip = page.locator("#clip-list .card", has_text="recording")
    clip.wait_for(timeout=30_000)  # decoded, sent as WAV, accepted by POST /v1/uploads
    assert page.locator("#err-upload").inner_text() == ""
    audio = clip.locator("audio")
    assert 0.5 < _loaded_duration(page, audio) < 5


@needs_chromium
def test_a_queued_job_can_be_cancelled(page, server):
    page.get_by_label("Prompt", exact=True).fill("a very long drone")
    page.get_by_label("Duration (s)").fill(str(SECONDS))
    page.get_by_label("Steps").fill("200")  # the service's cap: long enough to cancel while it runs
    page.get_by_role("button", name="Generate").click()
    row = page.locator("#queue-list li", has_text="a very long drone")
    row.get_by_role("button", name=re.compile("Cancel")).click()
    row.wait_for(state="detached", timeout=JOB_TIMEOUT_MS)
    card = _card(page, "a very long drone").first
    page.wait_for_function("c => c.dataset.status === 'cancelled'", arg=card.element_handle(), timeout=JOB_TIMEOUT_MS)


@needs_chromium
def test_a_server_with_a_token_asks_for_it_once_and_plays_with_it(chromium, tiny_10ms, tmp_path):
    from serving import Server

    guarded = Server(tiny_10ms, tmp_path / "data", token="studio-test-token").start()
    try:
        context = chromium.new_context(viewport={"width": 1366, "height": 768})
        page = context.new_page()
        page.goto(guarded.url)
        page.get_by_label("API token").wait_for()
        assert "token" in page.locator("#err-token").inner_text()  # the API's 401 message
        page.get_by_label("API token").fill("studio-test-token")
        page.get_by_role("button", name="Use token").click()
        page.wait_for_selector("body[data-ready]")
        _make(page, "a kettle whistling", seed=4)
        card = _wait_succeeded(page, "a kettle whistling")
        audio = card.locator("audio").first
        page.wait_for_function("a => a.duration > 0", arg=audio.element_handle(), timeout=30_000)
        page.reload()  # the token is remembered
        page.wait_for_selector("body[data-ready]")
        assert _card(page, "a kettle whistling").count() == 1
        context.close()
    finally:
        guarded.stop()
