"""The demo page in a real headless browser: load it, type a sentence, click, read the teacher's and the student's
answers side by side. Needs Debian's chromium + chromium-driver and selenium (skipped with the reason otherwise)."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi", reason='needs the serve extra: pip install "distilkit[serve]"')
pytest.importorskip("selenium", reason='needs selenium: pip install "distilkit[browser-test]"')

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="needs chromium and chromedriver: apt-get install chromium chromium-driver",
    ),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(ship_models):
    """The real app under uvicorn on a free loopback port, in a thread; stopped after the test."""
    import uvicorn

    from distilkit.ship.serve.app import ServeConfig, create_app

    port = _free_port()
    config = ServeConfig(
        str(ship_models["student"]), str(ship_models["teacher"]), port=port, backend="torch", threads=1
    )
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):  # bounded: 10 s
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1100,800", "--disable-extensions"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_page_shows_teacher_and_student_answers_side_by_side(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(server + "/")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    assert browser.find_element(By.ID, "panel-teacher").is_displayed()
    browser.find_element(By.ID, "text").send_keys("the captain was a good man and the sea was calm")
    browser.find_element(By.ID, "run").click()
    answers = {name: browser.find_element(By.ID, f"answer-{name}") for name in ("teacher", "student")}
    wait.until(lambda d: all(a.get_attribute("data-state") in ("done", "error") for a in answers.values()))
    browser.save_screenshot(str(tmp_path / "page.png"))
    for name, answer in answers.items():
        assert answer.get_attribute("data-state") == "done", answer.text
        assert answer.text.split(" (")[0] in ("negative", "positive") and answer.text.endswith("%)")
        latency = browser.find_element(By.ID, f"latency-{name}").text
        assert "ms in the server" in latency and "ms round trip" in latency
    assert "layers" in browser.find_element(By.ID, "meta-teacher").text
    assert "agree" in browser.find_element(By.ID, "agreement").text
    assert (tmp_path / "page.png").stat().st_size > 1000
