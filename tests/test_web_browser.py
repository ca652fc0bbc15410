"""The web interface in a real browser: Debian's chromium driven by Playwright, against a real uvicorn.

Nothing is downloaded: Playwright drives the system's ``/usr/bin/chromium`` (``scripts/setup``
installs it). The server is ``element-session serve --workers 2`` in a child process on a free
port. Screenshots of the main pages are saved under the test's temporary directory (and copied to
``$ELEMENT_SESSION_SCREENSHOTS`` when set; docs/web-sessions.png was made that way).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe

from element_session.ingest import ingest
from tests.helpers import add_references, remove_references
from tests.web_accounts import accounts
from tests.web_words import assert_in_words

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
SUBJECTS, PEOPLE, PROJECTS = ["wz-m1", "wz-m2"], ["wz-ada"], ["wz-maps"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def logins(connection, pipeline, prefix):
    add_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)
    ingest("sessions", [
        {"subject": "wz-m1", "session_datetime": "2024-05-01T09:00:00[Europe/Berlin]", "experimenter": "wz-ada",
         "project": "wz-maps", "session_note": "baseline", "attr.rig": "A"},
        {"subject": "wz-m2", "session_datetime": "2024-05-02T10:00:00Z", "session_note": "other mouse",
         "session_dir": "wz-m2/s1"},
    ], pipeline=pipeline)  # fmt: skip
    from workflow.inventory import SessionInventory

    roots = os.environ.get("SESSION_ROOT_DIRS")
    os.environ["SESSION_ROOT_DIRS"] = "/nonexistent-root"  # wz-m2's directory is under no root: its job fails
    try:
        SessionInventory().populate({"subject": "wz-m2"}, reserve_jobs=True, suppress_errors=True)
    finally:
        if roots is None:
            del os.environ["SESSION_ROOT_DIRS"]
        else:
            os.environ["SESSION_ROOT_DIRS"] = roots
    assert len(SessionInventory.jobs & {"subject": "wz-m2", "status": "error"}) == 1
    with accounts(connection, prefix) as made:
        yield made
    (SessionInventory.jobs & [{"subject": s} for s in SUBJECTS]).delete_quick()
    remove_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)


@pytest.fixture(scope="module")
def web_server(logins, subprocess_env, tmp_path_factory):
    """``serve`` in a child process; its base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("web") / "serve.log"
    command = [sys.executable, "-m", "element_session", "serve", "--port", str(port), "--workers", "2"]
    with log.open("w") as out:
        child = subprocess.Popen(command, env=subprocess_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert child.poll() is None, log.read_text()
                time.sleep(0.2)
        else:
            pytest.fail(f"the server did not start: {log.read_text()}")
        assert f"http://127.0.0.1:{port}/" in log.read_text()  # it prints its address
        assert "MariaDB" not in log.read_text() and "connected" not in log.read_text()  # quiet, workers too
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.wait(timeout=30)
    assert logins["writer"].password not in log.read_text()


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run ./scripts/setup (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("ELEMENT_SESSION_SCREENSHOTS")
    if target:
        shutil.copy(path, Path(target) / f"web-{name}.png")


def log_in(page, server: str, login) -> None:
    page.goto(f"{server}/login")
    page.fill("input[name=username]", login.user)
    page.fill("input[name=password]", login.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/")


def test_a_lab_member_walks_through_the_web_interface(browser, web_server, logins, subprocess_env, tmp_path):
    server = web_server
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    seen: dict[str, str] = {}  # every page visited, scanned for Python's words at the end

    axe = Axe()  # axe-core, shipped in axe-playwright-python
    barriers: dict[str, list[str]] = {}

    def look(name: str) -> None:
        seen[name] = page.content()
        found = axe.run(page).response["violations"]
        serious = [f"{v['id']} ({v['impact']}): {v['help']}" for v in found if v["impact"] in ("serious", "critical")]
        if serious:
            barriers[name] = serious

    answer = page.goto(f"{server}/")
    assert page.url.startswith(f"{server}/login")  # no data without a login
    look("login")
    headers = answer.all_headers()
    assert "frame-ancestors 'none'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    shot(page, tmp_path, "login")

    log_in(page, server, logins["writer"])
    shot(page, tmp_path, "sessions-all")
    look("sessions-all")  # wz-m2's failed job marked in the list
    failed = page.locator("a.failed")
    assert failed.count() == 1 and "a job of this session failed" in failed.inner_text()
    failed.click()
    page.wait_for_url(f"{server}/session?*#jobs")
    assert "DirectoryNotFoundError" in page.locator("#jobs").inner_text()
    look("session-failed-job")
    page.click("nav a[href='/jobs']")  # the jobs page: the same failed key, its error's type first
    page.wait_for_url(f"{server}/jobs")
    failed_row = page.locator("#jobs tbody tr", has_text="DirectoryNotFoundError")
    assert failed_row.count() == 1 and "wz-m2" in failed_row.inner_text()
    shot(page, tmp_path, "jobs")
    look("jobs")
    page.goto(f"{server}/")
    page.fill("form.filters input[type=search]", "OTHER MOUSE")  # wz-m2's note, letter case ignored
    page.click("form.filters button[type=submit]")
    page.wait_for_url(f"{server}/?search=OTHER+MOUSE*")
    assert page.locator("#total").inner_text() == "1"
    look("search")
    page.goto(f"{server}/")
    page.fill("form.filters input[name=subject]", "wz-m1")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(f"{server}/?*subject=wz-m1*")
    assert page.locator("#total").inner_text() == "1"
    shot(page, tmp_path, "sessions")
    page.fill("form.filters input[name=until]", "2024-05-01")  # a date: that whole day
    page.click("form.filters button[type=submit]")
    assert page.locator("#total").inner_text() == "1"
    assert "includes that whole day" in page.locator("#until-rule").inner_text()
    page.fill("form.filters input[name=since]", "2024-02-30")  # kept on the page, the reason next to the field
    page.click("form.filters button[type=submit]")
    assert page.locator(".field-error[data-field=since]").count() == 1
    assert page.locator("form.filters input[name=subject]").input_value() == "wz-m1"
    look("bad-filter")
    page.goto(f"{server}/?subject=wz-m1&subject=wz-m2")
    assert page.locator("form.filters input[name=subject]").count() == 2 and page.locator("#total").inner_text() == "2"
    page.goto(f"{server}/?subject=wz-m1&subject=wz-nobody")  # a subject that does not exist is named, not silent
    assert page.locator("p.warning").inner_text() == "subject 'wz-nobody': no such subject exists"
    look("unknown-subject")

    page.goto(f"{server}/?subject=wz-m1")
    page.click("a.open")
    page.wait_for_url(f"{server}/session?*")
    assert page.locator("#utc").inner_text() == "2024-05-01T07:00:00+00:00"
    assert "Europe/Berlin" in page.locator("#local").inner_text()
    assert page.locator("#note").inner_text() == "baseline"
    shot(page, tmp_path, "session")
    look("session")

    page.click("#edit")  # the page says an attribute whose name is emptied is removed: it is
    page.wait_for_url(f"{server}/edit?*")
    look("edit")
    assert page.locator("input[name=experimenter]").input_value() == "wz-ada"
    page.locator("input[name=attr_name]").first.fill("")
    page.fill("textarea[name=session_note]", "baseline\n  second line")  # several lines, kept as written
    page.fill("input[name=project]", "")  # every part is editable
    page.fill("input[name=session_dir]", "wz-m1/raw")
    page.click("form.edit button[type=submit]")
    page.wait_for_url(f"{server}/session?*")
    assert page.locator("#flash").inner_text() == "Saved."
    assert page.get_by_role("cell", name="rig").count() == 0
    assert page.locator("#note").inner_text() == "baseline\n  second line"
    history = page.locator("#history").inner_text()  # newest first, in words
    assert history.index("added Directory: directory wz-m1/raw") < history.index("removed Attributes")
    assert "removed Projects: project wz-maps" in history and "UTC" in history
    look("saved")

    page.click("#delete")
    page.wait_for_url(f"{server}/delete?*")
    assert page.locator("#preview").inner_text().count("The session") == 1
    look("delete")

    page.goto(f"{server}/add")
    assert page.locator("input[name=timezone]").input_value() == ""  # no zone assumed
    page.fill("input[name=subject]", "wz-m1")
    page.fill("input[name=session_datetime]", "2024-05-03T25:00:00")  # no such hour: refused next to its field
    page.fill("input[name=timezone]", "Europe/Berlin")
    page.click("form.add button[type=submit]")
    assert page.locator(".field-error[data-field=session_datetime]").count() == 1
    shot(page, tmp_path, "add-invalid")
    look("add-invalid")
    page.fill("input[name=session_datetime]", "2024-05-03T11:00:00")
    page.fill("input[name=experimenter]", "wz-ada")
    page.fill("[name=session_note]", "added in the browser")
    page.fill("input[name=project]", "wz-maps")  # the subject page colours its week by project
    page.click("form.add button[type=submit]")
    page.wait_for_url(f"{server}/?subject=wz-m1")
    assert page.locator("#total").inner_text() == "2"
    flash = page.locator("#flash").inner_text()
    assert "Added" in flash and "2024-05-03T09:00:00+00:00 (UTC)" in flash and "Europe/Berlin" in flash
    assert page.locator("tr.marked a.open").inner_text() == "2024-05-03 11:00:00 Europe/Berlin"
    look("added")

    listed = subprocess.run([sys.executable, "-m", "element_session", "sessions", "--subject", "wz-m1", "--format",
                             "json"], env=subprocess_env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    added = [s for s in json.loads(listed.stdout) if s["session_note"] == "added in the browser"]
    assert [s["session_datetime"] for s in added] == ["2024-05-03T09:00:00+00:00"]

    page.goto(f"{server}/subject?subject=wz-m1")
    assert page.locator("svg.timeline rect").count() >= 2 and page.locator("ul.legend li").count() >= 1
    shot(page, tmp_path, "subject")
    look("subject")
    page.click("form.logout button")
    page.wait_for_url(f"{server}/login")
    page.goto(f"{server}/")
    assert page.url.startswith(f"{server}/login")

    log_in(page, server, logins["reader"])  # read-only: offered no write at all
    assert page.locator("a[href='/add']").count() == 0
    page.click("a.open >> nth=0")
    page.wait_for_url(f"{server}/session?*")
    assert page.locator("#edit").count() == 0 and page.locator("#delete").count() == 0
    look("session-read-only")
    page.goto(f"{server}/add")
    assert page.locator("form.add").count() == 0 and "may not add" in page.locator("#may-not-add").inner_text()
    shot(page, tmp_path, "read-only-refused")
    look("add-read-only")
    page.click("form.logout button")
    page.wait_for_url(f"{server}/login")

    page.fill("input[name=username]", logins["outsider"].user)  # may read no session schema: told so in words
    page.fill("input[name=password]", logins["outsider"].password)
    page.click("button[type=submit]")
    assert "may not read schema" in page.locator("p.error").inner_text()
    look("outsider")

    for name, html in seen.items():
        assert_in_words(html), name
    assert not barriers, barriers  # no serious or critical accessibility violation on any page visited
    assert len(seen) >= 10
    for name in ("login", "sessions", "session", "add-invalid", "read-only-refused", "jobs", "subject"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_a_phone_in_dark_mode_sees_the_list_without_scrolling_the_page_sideways(browser, web_server, logins, tmp_path):
    page = browser.new_page(viewport={"width": 400, "height": 800}, color_scheme="dark")
    log_in(page, web_server, logins["reader"])
    assert page.evaluate("document.documentElement.scrollWidth") <= 400  # the table scrolls in its own box
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert sum(int(c) for c in background[4:-1].split(",")[:3]) < 150, background  # dark, as the system is
    shot(page, tmp_path, "sessions-phone-dark")
    page.click("a.open >> nth=0")
    page.wait_for_url(f"{web_server}/session?*")
    assert page.evaluate("document.documentElement.scrollWidth") <= 400


def test_a_phone_in_dark_mode_sees_a_failed_job_in_the_list_the_jobs_and_session_pages_readable_and_narrow(
    browser, web_server, logins
):
    page = browser.new_page(viewport={"width": 400, "height": 800}, color_scheme="dark")
    log_in(page, web_server, logins["writer"])
    page.goto(f"{web_server}/jobs")
    assert page.locator("#jobs tbody tr").count() == 1  # wz-m2's failed job: a wide table
    assert page.evaluate("document.documentElement.scrollWidth") <= 400  # the table scrolls in its own box
    page.goto(f"{web_server}/")
    found = Axe().run(page).response["violations"]  # the failed mark is as readable in the dark as in the light
    assert not [v["id"] for v in found if v["impact"] in ("serious", "critical")], found
    page.click("a.failed")
    page.wait_for_url(f"{web_server}/session?*#jobs")
    assert "DirectoryNotFoundError" in page.locator("#jobs").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 400


def test_a_note_typed_while_the_login_ended_is_kept_and_saved_after_logging_in_again(browser, web_server, logins):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    log_in(page, web_server, logins["writer"])
    page.goto(f"{web_server}/?subject=wz-m2")
    page.click("a.open >> nth=0")
    page.click("#edit")
    typed = "other mouse\ntyped while the login ended"  # still found by the walk-through's search for its note
    page.fill("textarea[name=session_note]", typed)
    context.clear_cookies()  # logged out meanwhile (another tab, the server's restart with a new secret)
    page.click("form.edit button[type=submit]")
    assert typed in page.locator("#typed").inner_text()
    page.fill("#resend input[name=username]", logins["writer"].user)
    page.fill("#resend input[name=password]", logins["writer"].password)
    page.click("#resend button[type=submit]")
    page.click("#resend button[type=submit]")  # send it again, now logged in
    page.wait_for_url(f"{web_server}/session?*")
    assert page.locator("#flash").inner_text() == "Saved."
    assert page.locator("#note").inner_text() == typed
    context.close()
