"""End to end in a real browser: `digitctl serve`, Debian's chromium, Playwright.

Draws a "1" and then a "7" beside it on the canvas with mouse strokes (the page must show
1, then 17), an empty box (not a digit) and a lone 7, then uploads an image, and checks
what the app shows each time. Screenshots go to ``$DIGITCTL_SCREENSHOTS`` when set,
else to the test's tmp folder.

Needs /usr/bin/chromium (``apt-get install -y chromium``; never ``playwright install``),
the playwright package and a trained model (the bundled one). Without them the test is
skipped, unless ``DIGITCTL_REQUIRE_BROWSER=1`` (CI) turns the skip into a failure.
Run only this test with ``pytest -m browser``.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from digitctl.modelfiles import bundled_model_path, lite_path_for

pytestmark = pytest.mark.browser

# Read at import: the autouse fixture in conftest.py clears DIGITCTL_* before each test.
REQUIRE_BROWSER = os.environ.get("DIGITCTL_REQUIRE_BROWSER", "") not in ("", "0")
SCREENSHOTS = os.environ.get("DIGITCTL_SCREENSHOTS")
# A trained model to use instead of the bundled one (for developing this test).
TEST_MODEL = os.environ.get("DIGITCTL_TEST_MODEL")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_S = 60
PREDICTION_TIMEOUT_MS = 20_000
FIRST_PAGE_TIMEOUT_MS = 90_000


def _model() -> Path | None:
    if TEST_MODEL:
        return Path(TEST_MODEL)
    bundled = bundled_model_path()
    if bundled.exists() or lite_path_for(bundled).exists():
        return bundled
    return None


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (
            "the playwright package is missing: pip install playwright (not `playwright install`)"
        )
    if _model() is None:
        return "no trained model: the bundled model is missing (set DIGITCTL_TEST_MODEL=PATH)"
    return None


@pytest.fixture(scope="module")
def browser_requirements() -> None:
    reason = _missing()
    if reason is None:
        return
    if REQUIRE_BROWSER:
        pytest.fail(f"DIGITCTL_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"digitctl serve exited with {process.returncode}:\n{err.decode()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{url}/_stcore/health did not answer within {timeout} s")


@pytest.fixture(scope="module")
def server(browser_requirements: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`digitctl serve` on a free port, stopped with Ctrl-C (SIGINT) afterwards: exit 0."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Only this test's settings reach the server (CI's DIGITCTL_* switches are not settings).
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITCTL_")}
    command = [sys.executable, "-m", "digitctl", "serve", "--port", str(port), "--no-open"]
    command += ["--model", str(_model())]
    process = subprocess.Popen(
        command,
        cwd=tmp_path_factory.mktemp("serve"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as in a terminal
    )
    try:
        wait_for_health(url, process, SERVER_START_S)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            _, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            _, err = process.communicate()
        assert process.returncode == 0, err.decode()
        assert b"Traceback" not in err, err.decode()


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(PREDICTION_TIMEOUT_MS)
            page.goto(server)
            yield page
        finally:
            browser.close()


def draw(page, strokes: list[list[tuple[float, float]]]) -> None:  # noqa: ANN001
    """Draw each stroke (points in 0..1 of the canvas) with the mouse."""
    canvas = page.locator("canvas.upper-canvas")
    canvas.wait_for(state="visible")
    box = canvas.bounding_box()
    assert box is not None
    for stroke in strokes:
        x0, y0 = stroke[0]
        page.mouse.move(box["x"] + x0 * box["width"], box["y"] + y0 * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=12)
        page.mouse.up()


def expect_prediction(page, text: str) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    prediction = page.locator(".st-key-prediction")
    expect(prediction).to_contain_text(f"Prediction: {text}", timeout=PREDICTION_TIMEOUT_MS)
    # The boxes, the 28×28 views (and, for one digit, the chart) render a moment after the
    # text; wait for them (and for every image to load) before screenshots.
    expect(page.get_by_text("What the model saw")).to_be_visible()
    if len(text) == 1:
        expect(page.locator("[data-testid=stVegaLiteChart]").first).to_be_visible()
    expect(page.locator("[data-testid=stImage] img")).to_have_count(1 + len(text))
    page.wait_for_function(
        "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
    )


def expect_no_prediction(page) -> None:  # noqa: ANN001
    """Wait until no prediction is shown, so a stale one cannot satisfy the next check."""
    from playwright.sync_api import expect

    expect(page.locator(".st-key-prediction")).to_have_count(0, timeout=PREDICTION_TIMEOUT_MS)


def reset_canvas(page) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    page.locator("button[aria-label='Reset canvas & history']").click()
    expect_no_prediction(page)
    expect(page.get_by_text("Draw a digit or a number on the black canvas")).to_be_visible()


def canvas_fits(page) -> None:  # noqa: ANN001
    """The 3:1 canvas is shown whole: not squeezed, clipped or scrolled sideways."""
    from digitctl.app.streamlit_app import CANVAS_HEIGHT, CANVAS_WIDTH

    box = page.locator("canvas.upper-canvas").bounding_box()
    # The divider under the input spans the content column (the block's padding excluded).
    column = page.locator("[data-testid=stMainBlockContainer] hr").first.bounding_box()
    assert box is not None and column is not None
    assert (round(box["width"]), round(box["height"])) == (CANVAS_WIDTH, CANVAS_HEIGHT)
    assert box["x"] >= column["x"] - 0.5
    assert box["x"] + box["width"] <= column["x"] + column["width"] + 0.5


def digit_png(digit: int) -> bytes:
    """A photo-like digit: dark ink on light paper, thick strokes, as a person would upload."""
    from PIL import Image, ImageDraw

    strokes = {
        1: [[(0.5, 0.15), (0.5, 0.85)]],
        7: [[(0.25, 0.2), (0.75, 0.2), (0.42, 0.85)]],
    }[digit]
    image = Image.new("RGB", (300, 300), (235, 232, 225))
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        pen.line(
            [(x * 300, y * 300) for x, y in stroke], fill=(30, 30, 40), width=24, joint="curve"
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# Points in 0..1 of the 3:1 canvas: a "1" on the left and a "7" beside it, each about as
# wide as a hand would write them; a lone "7" in the middle; an empty box, wide like a form
# field (the layout calls it lines; a box about as wide as tall is read as a 0 by a model
# without a "not a digit" class).
ONE = [[(0.2, 0.15), (0.19, 0.85)]]
SEVEN_BESIDE = [[(0.3, 0.2), (0.45, 0.2), (0.36, 0.85)]]
SEVEN = [[(0.42, 0.2), (0.58, 0.2), (0.48, 0.85)]]
EMPTY_BOX = [[(0.1, 0.15), (0.9, 0.15), (0.9, 0.85), (0.1, 0.85), (0.1, 0.15)]]


def test_draw_and_upload_digits_in_a_real_browser(page, screenshot_dir: Path) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    started = last = time.perf_counter()
    laps: list[str] = []

    def lap(step: str) -> None:
        nonlocal last
        now = time.perf_counter()
        laps.append(f"{step} {now - last:.1f} s")
        last = now

    # The first page loads the model (once per server): allow a slow, busy machine.
    expect(page.get_by_text("Draw a digit or a number on the black canvas")).to_be_visible(
        timeout=FIRST_PAGE_TIMEOUT_MS
    )
    page.get_by_role("slider").first.wait_for()
    canvas_fits(page)
    lap("first page")

    draw(page, ONE)
    expect_prediction(page, "1")
    lap("draw 1")
    draw(page, SEVEN_BESIDE)
    expect_prediction(page, "17")
    lap("draw 7 beside it")
    page.screenshot(path=screenshot_dir / "draw-17.png", full_page=True)

    reset_canvas(page)
    draw(page, EMPTY_BOX)
    expect(page.get_by_text("That does not look like a digit")).to_be_visible()
    expect_no_prediction(page)
    lap("clear + draw a box")
    page.screenshot(path=screenshot_dir / "draw-box.png", full_page=True)

    reset_canvas(page)
    draw(page, SEVEN)
    expect_prediction(page, "7")
    lap("clear + draw 7")
    page.screenshot(path=screenshot_dir / "draw-7.png", full_page=True)

    page.get_by_text("Upload an image", exact=True).click()
    expect_no_prediction(page)  # the drawing's 7 must not answer for the upload
    expect(page.get_by_text("Upload an image of a digit or a number to see what")).to_be_visible()
    page.locator("input[type=file]").set_input_files(
        files=[{"name": "seven.png", "mimeType": "image/png", "buffer": digit_png(7)}]
    )
    expect_prediction(page, "7")
    expect(page.get_by_text("seven.png").first).to_be_visible()
    lap("upload 7")
    page.screenshot(path=screenshot_dir / "upload-7.png", full_page=True)

    page.locator("input[type=file]").set_input_files(
        files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"not an image"}]
    )
    expect(page.locator("[data-testid=stAlertContentError]")).to_contain_text("broken.png")
    lap("broken upload")
    page.screenshot(path=screenshot_dir / "upload-broken.png", full_page=True)

    print(
        f"browser steps took {time.perf_counter() - started:.1f} s ({', '.join(laps)}); "
        f"screenshots in {screenshot_dir}"
    )
