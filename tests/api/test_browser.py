"""The web page in a real browser (Debian's headless Chromium via chromedriver) against a running
server, a real dispatcher on a local Ray cluster, real Redis and SQLite: log in, watch a job go to
SUCCEEDED live, open its model (word map, nearest words), cancel another job from its page.
Screenshots are saved under the test's temporary folder. Skips, saying why, without a browser
(`make browser` installs one)."""
from __future__ import annotations

import re
import shutil

import pytest

from tests.api.conftest import create_tokens, register_cnn, running_server

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.timeout(420),
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                 reason="no chromium/chromedriver on PATH (`make browser` installs Debian's)")]


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1800", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    except Exception as e:  # a browser that is installed but cannot start here
        pytest.skip(f"chromium could not start: {str(e).splitlines()[0]}")
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def text_of(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def wait_for(driver, condition, timeout: float, what: str):
    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(lambda d: condition(d), message=what)


def test_jobs_and_models_pages_follow_a_job_to_succeeded(browser, cluster_settings, dispatcher, small_corpus, tmp_path):
    tokens = create_tokens(cluster_settings, alice=False, bob=False)
    with running_server(cluster_settings) as server:
        # not logged in: the page sends us to /login
        browser.get(server.url + "/")
        assert "/login" in browser.current_url
        browser.find_element(By.ID, "token").send_keys(tokens["alice"])
        browser.find_element(By.ID, "login").click()
        wait_for(browser, lambda d: d.find_elements(By.ID, "jobs"), 20, "the jobs page after logging in")
        assert "alice" in browser.find_element(By.CSS_SELECTOR, "header .who").text

        spec = {"name": "browsed", "params": {"corpus": [str(small_corpus)], "dim": 16, "epochs": 2, "min_count": 2}}
        job = server.post("/api/jobs", token=tokens["alice"], json=spec).json()
        # the table picks the new job up without a reload
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-job="{job["id"]}"]'), 20,
                 "the new job in the live jobs table")
        browser.save_screenshot(str(tmp_path / "jobs.png"))

        browser.get(f"{server.url}/jobs/{job['id']}")
        wait_for(browser, lambda d: text_of(d, "f-state") in ("SUCCEEDED", "FAILED", "CANCELLED"), 300,
                 "the job page to show the job finished")
        assert text_of(browser, "f-state") == "SUCCEEDED", text_of(browser, "log")
        wait_for(browser, lambda d: "registered model browsed version 1" in text_of(d, "log"), 30,
                 "the log stream to show the registration")
        assert text_of(browser, "pct") == "100.0%"
        assert not browser.find_element(By.ID, "cancel").is_displayed()  # nothing to cancel any more
        assert not browser.find_element(By.ID, "retry").is_displayed()  # a SUCCEEDED job is not retried
        assert "vocab_size" in text_of(browser, "metrics")
        points = server.get(f"/api/jobs/{job['id']}/series", token=tokens["alice"]).json()["points"]
        assert points and all("loss" in p for p in points)  # what the loss curve was drawn from
        browser.save_screenshot(str(tmp_path / "job.png"))

        browser.find_element(By.ID, "model-link-a").click()
        wait_for(browser, lambda d: d.find_elements(By.ID, "map"), 20, "the model page")
        assert "browsed:1" in browser.find_element(By.TAG_NAME, "h1").text
        browser.find_element(By.ID, "word").send_keys("cat3")
        browser.find_element(By.CSS_SELECTOR, "#nearest button").click()
        wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#neighbours tr")) == 10, 20,
                 "ten nearest words")
        near = [r.text.split()[0] for r in browser.find_elements(By.CSS_SELECTOR, "#neighbours tr")]
        assert sum(w.startswith("cat") for w in near[:5]) >= 4, near
        browser.find_element(By.ID, "alias").send_keys("production")
        browser.find_element(By.CSS_SELECTOR, "#alias-form button").click()
        wait_for(browser, lambda d: text_of(d, "aliases") == "production", 10, "the alias to show")
        browser.save_screenshot(str(tmp_path / "model.png"))

        browser.get(server.url + "/models?q=brow")
        assert "browsed:1" in text_of(browser, "models")

        # cancel from the page: a long job, cancelled by its owner's button
        long = server.post("/api/jobs", token=tokens["alice"],
                           json={**spec, "name": "long", "params": {**spec["params"], "epochs": 1000}}).json()
        browser.get(f"{server.url}/jobs/{long['id']}")
        browser.find_element(By.ID, "cancel").click()
        wait_for(browser, lambda d: text_of(d, "f-state") == "CANCELLED", 30, "the cancel button to cancel")
        wait_for(browser, lambda d: d.find_element(By.ID, "retry").is_displayed(), 10, "the retry button")
        browser.save_screenshot(str(tmp_path / "cancelled.png"))

        # a CNN's page: confusion matrix and filters drawn by the server, and an image dropped for prediction
        cnn = register_cnn(cluster_settings, "digits-page")
        browser.get(f"{server.url}/models/{cnn}")
        wait_for(browser, lambda d: d.execute_script(
            "return ['confusion', 'filters'].every(i => document.getElementById(i).naturalWidth > 100)"), 30,
            "the confusion matrix and filter pictures")
        png = tmp_path / "upload.png"
        from PIL import Image
        Image.new("L", (16, 16), 255).save(png)
        browser.find_element(By.ID, "image").send_keys(str(png))
        wait_for(browser, lambda d: re.fullmatch(r"[abc] \([0-9.]+%\)", text_of(d, "predicted")), 30, "a prediction")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#prediction tr")) == 3
        browser.save_screenshot(str(tmp_path / "cnn.png"))

        # another user's job page offers no buttons, and the API refuses them anyway
        browser.get(server.url + "/logout")
        browser.get(server.url + "/login")
        browser.find_element(By.ID, "token").send_keys(tokens["bob"])
        browser.find_element(By.ID, "login").click()
        wait_for(browser, lambda d: d.find_elements(By.ID, "jobs"), 20, "bob's jobs page")
        browser.get(f"{server.url}/jobs/{job['id']}")
        assert not browser.find_elements(By.ID, "cancel") and not browser.find_elements(By.ID, "retry")
    for name in ("jobs", "job", "model", "cancelled", "cnn"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
