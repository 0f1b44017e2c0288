"""The run browser in a real headless Chromium (Debian's, driven by Selenium through
``chromium-driver``), as a user clicks through it: the run list, a run with its DAG and
timeline, a task with its logs and artifacts, a task with its card, a failed run.

A screenshot of each page is saved in the test's temporary folder (``tmp_path``)."""

from __future__ import annotations

import shutil
import time

import pytest
from PIL import Image as PILImage
from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.chromium import FLAGS, chromium
from tests.test_ui_api import filled  # noqa: F401 - the module-wide datastore of real runs
from tests.ui_server import UiServer, start_live_run


@pytest.fixture
def browser():
    driver_exe = shutil.which("chromedriver")
    assert driver_exe, "chromedriver is missing: .ci/install-apt-tools.sh installs chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium()
    for flag in FLAGS:  # offline, as for cards, except for the server under test
        if flag.startswith("--host-resolver-rules="):
            flag += ", EXCLUDE 127.0.0.1"
        options.add_argument(flag)
    options.add_argument("--window-size=1280,1500")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_exe), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, timeout: float = 30):
    """Until ``condition`` holds; the page redraws itself, so elements may go stale."""
    ignored = (NoSuchElementException, StaleElementReferenceException)
    wait = WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=ignored)
    return wait.until(condition)


#: the run list's rows as [run id, status], read at once
ROWS = (
    "return [...document.querySelectorAll('tr[data-run]')]"
    ".map(r => [r.dataset.run, r.querySelector('.status').textContent])"
)


def _do(driver, action) -> None:
    """Do ``action``, again if the page redrew the element it used meanwhile."""
    _wait(driver, lambda d: action() or True)


def _colors(png) -> int:
    with PILImage.open(png) as im:
        return len(im.convert("RGB").getcolors(maxcolors=1 << 20) or [])


def _shot(driver, folder, name: str) -> None:
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)), name
    assert _colors(path) > 10, f"{name}.png looks blank"


def _frame_text(driver, frame) -> str:
    """The text of a frame's page (empty while it loads); back to the page after."""
    driver.switch_to.frame(frame)
    try:
        return driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.switch_to.default_content()


def _no_alert(driver) -> None:
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        return
    raise AssertionError(f"a script from the datastore ran: an alert says {text!r}")


def test_click_through_runs_run_task_and_card(filled, browser, tmp_path):  # noqa: F811
    folder, root = filled
    d = browser
    with UiServer("--datastore-root", root) as ui:
        d.get(ui.url)
        link = _wait(d, lambda d: d.find_element(By.LINK_TEXT, "UiFlow"))
        _shot(d, tmp_path, "1-flows")
        link.click()

        # the run list (it redraws itself every 2 s: rows are read in one script call)
        _wait(d, lambda d: len(d.execute_script(ROWS)) == 3)
        rows = d.execute_script(ROWS)
        assert [status for _, status in rows] == ["failed", "succeeded", "succeeded"]
        failed_id, ok_id = rows[0][0], rows[2][0]
        _shot(d, tmp_path, "2-runs")
        # ... but not under the fingers of someone typing in the filters
        _do(d, lambda: d.find_element(By.NAME, "tag").send_keys("nigh"))
        time.sleep(4.5)
        assert d.find_element(By.NAME, "tag").get_attribute("value") == "nigh"
        d.find_element(By.NAME, "tag").clear()
        Select(d.find_element(By.NAME, "status")).select_by_value("failed")
        d.find_element(By.CSS_SELECTOR, "form.filters button").click()
        _wait(d, lambda d: [r[0] for r in d.execute_script(ROWS)] == [failed_id])

        # the failed run: resume instructions, the DAG drawn, steps colored by status
        _do(d, lambda: d.find_element(By.LINK_TEXT, failed_id).click())
        _wait(d, lambda d: failed_id in d.find_element(By.TAG_NAME, "h1").text)
        resume = _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "section.resume pre"))
        assert resume.text == f"python uiflow.py resume --origin-run-id {failed_id}"
        _wait(d, lambda d: d.execute_script(
            "const i = document.querySelector('.dag img'); return i && i.complete && i.naturalWidth"
        ))  # fmt: skip
        _shot(d, tmp_path, "3-failed-run")

        # a run that succeeded after a retry: DAG, steps, timeline with both attempts
        d.get(f"{ui.url}#/runs/UiFlow/{ok_id}")
        _wait(d, lambda d: ok_id in d.find_element(By.TAG_NAME, "h1").text)
        _wait(d, lambda d: d.execute_script(
            "const i = document.querySelector('.dag img'); return i && i.complete && i.naturalWidth"
        ))  # fmt: skip
        bars = d.find_elements(By.CSS_SELECTOR, ".gantt .bar")
        assert len(bars) == 7  # six tasks, one of them with two attempts
        assert len(d.find_elements(By.CSS_SELECTOR, ".gantt .bar.failed")) == 1
        step_rows = d.find_elements(By.CSS_SELECTOR, "section table tbody tr")
        assert [r.find_element(By.TAG_NAME, "td").text for r in step_rows[:4]] == [
            "start", "work", "join", "end",
        ]  # fmt: skip
        _shot(d, tmp_path, "4-run")

        # a task: its log shows <script> as text, previews too, no script ran
        d.find_element(By.LINK_TEXT, "start").click()
        _wait(d, lambda d: d.find_element(By.TAG_NAME, "h1").text.startswith("Task "))
        log = _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "pre.log[data-stream=stdout]"))
        _wait(d, lambda d: "friends" in log.text)
        assert log.text == "<script>alert('log')</script> & friends"
        previews = [c.text for c in d.find_elements(By.CSS_SELECTOR, "td code")]
        assert "{'name': '<script>alert(1)</script>', 'values': [1, 2.5, None, True]}" in previews
        assert d.execute_script("return document.querySelectorAll('main script').length") == 0
        _no_alert(d)
        d.find_element(By.CSS_SELECTOR, "button.value").click()  # the trap: refused
        _wait(d, lambda d: "--allow-unpickle" in d.find_element(By.TAG_NAME, "main").text)
        assert not (folder / "TRAPPED").exists()
        _shot(d, tmp_path, "5-task")

        # the end task: its card, embedded in a sandboxed frame, really drawn
        d.find_element(By.LINK_TEXT, ok_id).click()
        _wait(d, lambda d: d.find_element(By.TAG_NAME, "h1").text.startswith("Run "))
        end = _wait(d, lambda d: d.find_element(By.LINK_TEXT, "end"))
        end.click()
        frame = _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "iframe.card"))
        assert frame.get_attribute("sandbox") == "allow-scripts"
        _wait(d, lambda d: f"UiFlow/{ok_id}/end/" in _frame_text(d, frame))
        d.execute_script("document.querySelector('iframe.card').scrollIntoView()")
        _shot(d, tmp_path, "6-task-with-card")
        _no_alert(d)

        errors = [
            e["message"]
            for e in d.get_log("browser")
            if e["level"] == "SEVERE" and "status of 403" not in e["message"]
        ]
        assert errors == []
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "1-flows.png", "2-runs.png", "3-failed-run.png", "4-run.png", "5-task.png",
        "6-task-with-card.png",
    ]  # fmt: skip


def test_a_running_task_updates_without_reloading_the_page(browser, tmp_path):
    """The task page of a running task: its log grows, then it turns succeeded, and the
    page was never reloaded (a mark left on ``window`` survives)."""
    run, root = start_live_run(tmp_path, ticks=24)
    d = browser
    try:
        with UiServer("--datastore-root", str(root)) as ui:
            deadline = time.time() + 60
            task = None
            while task is None and time.time() < deadline:
                try:
                    (r,) = ui.get("api/flows/LiveFlow/runs")["runs"]
                    task = ui.get(f"api/runs/LiveFlow/{r['id']}/tasks")["tasks"][0]
                except (AssertionError, ValueError, IndexError):
                    time.sleep(0.2)
            assert task is not None and task["status"] == "running"
            d.get(f"{ui.url}#/tasks/{task['pathspec']}")
            log = _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "pre.log[data-stream=stdout]"))
            _wait(d, lambda d: "tick" in log.text)
            d.execute_script("window.mflMark = 'same page'")
            assert d.find_element(By.CSS_SELECTOR, "h1 .status").text == "running"
            assert not d.find_element(By.ID, "live").get_attribute("hidden")
            _shot(d, tmp_path, "running-task")
            first = log.text
            _wait(
                d, lambda d: d.find_element(By.CSS_SELECTOR, "h1 .status").text == "succeeded", 90
            )
            log = d.find_element(By.CSS_SELECTOR, "pre.log[data-stream=stdout]")
            _wait(d, lambda d: "tick 23" in log.text)
            assert len(log.text) > len(first)
            assert log.text == "\n".join(f"tick {i}" for i in range(24))
            assert d.execute_script("return window.mflMark") == "same page"
            _shot(d, tmp_path, "finished-task")
    finally:
        run.wait(timeout=120)
    assert run.returncode == 0
