"""The web page end to end in headless Chromium (Debian's package, driven by Playwright): upload a
real image with a post, check the rendered results per level, the bars and the radar chart, and keep
a screenshot (out/screenshots/page.png)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "out" / "screenshots"


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed: pip install 'somelvlm[test]'")
    path = chromium_path()
    if path is None:
        pytest.skip("chromium not installed (apt-get install -y chromium, or make test as root)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_page_uploads_an_image_and_shows_results_by_level(browser, start_server, tiny_analyzer, tiny_generator):
    server = start_server(tiny_analyzer, tiny_generator)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(server.url + "/")
    page.wait_for_selector("#levels input[value=knowledge_comprehension]")
    assert "tiny-mini" in page.text_content("#status")
    page.fill("#text", "I just love Mondays... #not")
    page.set_input_files("#image", str(REPO / "examples" / "monday_meme.png"))
    assert page.is_visible("#preview")
    page.click("#submit")
    page.wait_for_selector("#level-cards article.level")
    cards = page.query_selector_all("#level-cards article[data-level]")
    assert [c.get_attribute("data-level") for c in cards] == [
        "knowledge_comprehension", "application", "analysis", "evaluation", "creation"]
    emotion = page.query_selector("[data-level=knowledge_comprehension] [data-task=emotion]")
    assert emotion is not None and len(emotion.query_selector_all(".bar")) == 4
    width = emotion.query_selector(".bar .fill").evaluate("e => parseFloat(e.style.width)")
    assert 0 < width <= 100
    assert page.query_selector("[data-level=application] [data-task=humor_rating]") is not None
    generated = page.query_selector_all("[data-task=hashtags] .generated, [data-task=detoxify] .generated")
    assert len(generated) == 2  # the tiny generator answered the creation and evaluation tasks
    assert "image 320×240" in page.text_content("#meta")
    assert len(page.query_selector_all("#radar .radar-point")) >= 4
    assert page.query_selector("#radar-shape").get_attribute("points")
    assert not page.is_visible("#error")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "page.png"), full_page=True)
    assert (SCREENSHOTS / "page.png").stat().st_size > 10_000
    assert errors == []


def test_page_shows_the_servers_error_and_keeps_working(browser, start_server, tiny_analyzer):
    server = start_server(tiny_analyzer)
    page = browser.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector("#levels input")
    page.set_input_files("#image", {"name": "fake.png", "mimeType": "image/png", "buffer": b"not an image at all"})
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    assert "not an image" in page.text_content("#error")
    page.fill("#text", "what a lovely day")
    page.click("#clear-image")
    page.click("#submit")
    page.wait_for_selector("#level-cards article.level")
    assert not page.is_visible("#error")


def test_page_with_the_shipped_model_on_a_meme_read_by_ocr(browser, start_server, shipped_analyzer):
    """The shipped SoMe-mini on an image-only meme: the text comes from OCR (screenshot for the README)."""
    pytest.importorskip("rapidocr_onnxruntime", reason="OCR needs the features extra")
    server = start_server(shipped_analyzer)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url + "/")
    page.wait_for_selector("#levels input[value=knowledge_comprehension]")
    page.set_input_files("#image", str(REPO / "examples" / "monday_meme.png"))
    page.click("#submit")
    page.wait_for_selector("#level-cards article.level", timeout=60_000)
    assert "OCR" in page.text_content("#meta")
    assert "Read from the image" in page.text_content("#text-read")
    assert page.query_selector("[data-task=emotion] .task-label").text_content()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "page-some-mini.png"), full_page=True)


def test_page_shows_out_of_domain_answers_as_such(browser, start_server, shipped_analyzer):
    """An off-topic post through the shipped model: the COVID fake-news head's answer reads "out of domain"
    (label dimmed), the emotion head's answer stays a label. The domain fields come from the model's own
    ``predict``; where the server's results already carry them they are used as they are."""
    import httpx

    text = "Just got the job offer I've been dreaming about for two years!!! Can't stop smiling"
    server = start_server(shipped_analyzer)
    body = httpx.post(server.url + "/v1/analyze", data={"text": text, "levels": "knowledge_comprehension"},
                      timeout=60).json()
    assert "fake_news" in body["results"] and "emotion" in body["results"]
    own = shipped_analyzer.model.predict([text], list(body["results"]))[0]
    for task, result in body["results"].items():
        for key in ("in_domain", "domain_score"):
            result.setdefault(key, own[task][key])
    assert body["results"]["fake_news"]["in_domain"] is False and body["results"]["emotion"]["in_domain"] is True
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(server.url + "/")
    page.wait_for_selector("#levels input[value=knowledge_comprehension]")
    page.evaluate("body => render(body)", body)
    fake = page.query_selector("[data-task=fake_news]")
    assert "ood" in fake.get_attribute("class") and fake.get_attribute("data-in-domain") == "false"
    assert fake.query_selector(".ood-label").text_content() == "out of domain"
    assert "do not rely" in fake.query_selector(".domain.out").text_content()
    emotion = page.query_selector("[data-task=emotion]")
    assert "ood" not in emotion.get_attribute("class") and emotion.query_selector(".ood-label") is None
    assert emotion.get_attribute("data-in-domain") == "true"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "page-out-of-domain.png"), full_page=True)
    assert errors == []
