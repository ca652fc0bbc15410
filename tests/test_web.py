"""The web interface (issue 13) against the real test server: API, pages, logins, CSRF, refusals.

Each request is answered as the account that logged in: a writer, a read-only reader, and an
outsider who may read only the lab schema (tests/web_accounts.py). The API's answers are compared
with what ``element-session sessions`` prints for the same filters.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from element_session.ingest import ingest
from element_session.web import create_app
from tests.helpers import add_references, remove_references, snapshot
from tests.web_accounts import accounts
from tests.web_words import assert_in_words

JSON = {"Content-Type": "application/json"}
SUBJECTS, PEOPLE, PROJECTS = ["wb-m1", "wb-m2", "wb-pg"], ["wb-ada", "wb-bob"], ["wb-maps"]
ROWS = [
    {"subject": "wb-m1", "session_datetime": "2024-03-10T14:30:00[Europe/Berlin]", "session_id": 1,
     "experimenter": ["wb-ada", "wb-bob"], "project": "wb-maps", "session_dir": "wb-m1/s1",
     "session_note": "first, ✓", "attr.rig": "A"},
    {"subject": "wb-m1", "session_datetime": "2024-03-12T09:00:00Z", "experimenter": "wb-ada"},
    {"subject": "wb-m2", "session_datetime": "2024-03-11T09:00:00-05:00", "session_dir": "wb-m2/s1",
     "attr.rig": "B"},
]  # fmt: skip


@pytest.fixture(scope="module")
def logins(connection, pipeline, prefix):
    with accounts(connection, prefix) as made:
        yield made


@pytest.fixture(scope="module")
def data(pipeline, logins):
    add_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)
    ingest("sessions", ROWS, pipeline=pipeline)
    yield pipeline
    from workflow.inventory import FileTypeSummary, SessionInventory

    for table in (SessionInventory, FileTypeSummary):
        (table.jobs & [{"subject": s} for s in SUBJECTS]).delete_quick()
    remove_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)


@pytest.fixture(scope="module")
def app(data):
    return create_app(data, b"test secret of this run")


@pytest.fixture
def client(app):
    with TestClient(app) as test_client:
        yield test_client


def log_in(client: TestClient, login) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
    answer = client.post("/login", data={"username": login.user, "password": login.password, "csrf_token": token},
                         follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303, answer.text


def csrf(client: TestClient, path: str = "/") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)[1]


def test_the_serve_command_refuses_a_bad_port_or_worker_count(capsys):
    from element_session import cli

    assert cli.main(["serve", "--port", "70000"]) == 2
    assert cli.main(["serve", "--workers", "0"]) == 2
    assert cli.main(["serve", "--timezone", "Mars/Base"]) == 2  # checked before anything is served
    assert cli.main(["serve", "--help"]) == 0
    assert "--workers" in capsys.readouterr().out


def test_serve_on_a_port_in_use_is_a_usage_error_before_it_prints_an_address(pipeline, capsys):
    import socket

    from element_session import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert "serving" not in out and f"cannot serve at 127.0.0.1:{port}: Address already in use" in err


# -- JSON API ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "options"),
    [
        ([("subject", "wb-m1"), ("subject", "wb-m2")], ["--subject", "wb-m1", "--subject", "wb-m2"]),
        ([("subject", "wb-m1"), ("project", "wb-maps")], ["--subject", "wb-m1", "--project", "wb-maps"]),
        ([("experimenter", "wb-ada")], ["--experimenter", "wb-ada"]),
        ([("since", "2024-03-11T10:00"), ("until", "2024-03-13"), ("timezone", "Europe/Berlin")],
         ["--since", "2024-03-11T10:00", "--until", "2024-03-13", "--timezone", "Europe/Berlin"]),
    ],
)  # fmt: skip
def test_api_sessions_are_what_the_command_prints(client, logins, command, params, options):
    printed = json.loads(command("sessions", *options, "--format", "json").out)
    assert printed  # the filters select something
    answer = client.get("/api/sessions", params=params, auth=logins["reader"].auth)
    assert answer.status_code == 200, answer.text
    exact = {"total": len(printed), "total_exact": True}
    assert answer.json() == {"sessions": printed, **exact, "limit": 100, "offset": 0, "next": None}
    sliced = client.get("/api/sessions", params=[*params, ("limit", "1"), ("offset", "1")], auth=logins["reader"].auth)
    if len(printed) > 1:
        assert {k: v for k, v in sliced.json().items() if k != "next"} == {"sessions": printed[1:2], **exact,
                                                                            "limit": 1, "offset": 1}  # fmt: skip
        assert (sliced.json()["next"] is None) == (len(printed) <= 2)
    else:  # past the last page: said plainly, as the list says it
        assert sliced.status_code == 400 and sliced.json()["problems"][0]["column"] == "offset"
    csv_text = client.get("/api/sessions.csv", params=params, auth=logins["reader"].auth)
    assert csv_text.status_code == 200 and csv_text.text == command("sessions", *options, "--format", "csv").out


def test_api_attribute_filter_selects_as_find_sessions(client, logins, data):
    answer = client.get("/api/sessions", params={"attribute": "rig", "value": "B"}, auth=logins["reader"].auth)
    assert [(s["subject"], s["attributes"]) for s in answer.json()["sessions"]] == [("wb-m2", {"rig": "B"})]


def test_api_needs_a_database_account(client, logins):
    assert client.get("/api/sessions").status_code == 401
    wrong = client.get("/api/sessions", auth=(logins["reader"].user, "wrong"))
    assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers
    assert logins["reader"].password not in wrong.text
    assert client.get("/api/sessions", headers={"Authorization": "Basic !!!"}).status_code == 401
    assert client.post("/api/sessions", json=[]).status_code == 401


def test_an_account_that_cannot_read_the_session_schema_gets_403(client, logins):
    answer = client.get("/api/sessions", auth=logins["outsider"].auth)
    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert f"your account {logins['outsider'].user} may not read schema " in error and "create_schema" not in error


@pytest.mark.parametrize(
    "params",
    [{"limit": "-1"}, {"offset": "x"}, {"since": "2024-02-30"}, {"until": "yesterday"}, {"timezone": "Mars/Base"},
     {"value": "A"}, {"subject": "a\x00b"}, {"colour": "red"}, {"limit": "99999999999999999999"}],
)  # fmt: skip
def test_malformed_parameters_are_400_with_the_reason(client, logins, params):
    answer = client.get("/api/sessions", params=params, auth=logins["reader"].auth)
    assert answer.status_code == 400, answer.text
    (problem, *_) = answer.json()["problems"]
    assert problem["column"] in params and problem["reason"]


def test_post_sessions_is_one_ingest_as_the_account(client, logins, data):
    rows = [{"subject": "wb-m2", "session_datetime": "2024-04-01T10:00:00", "experimenter": "wb-bob",
             "session_note": "posted"}]  # fmt: skip
    first = client.post("/api/sessions", json=rows, params={"timezone": "Europe/Berlin"}, auth=logins["writer"].auth)
    assert first.status_code == 201, first.text
    assert first.json()["new"] == 1 and first.json()["inserted"]["Session"] == 1
    again = client.post("/api/sessions", json=rows, params={"timezone": "Europe/Berlin"}, auth=logins["writer"].auth)
    assert again.status_code == 200 and again.json()["new"] == 0 and again.json()["present"] == 1
    found = client.get("/api/sessions", params={"subject": "wb-m2", "since": "2024-04-01"}, auth=logins["writer"].auth)
    assert [s["session_datetime"] for s in found.json()["sessions"]] == ["2024-04-01T08:00:00+00:00"]


def test_post_invalid_rows_is_400_naming_row_column_value_and_nothing_is_written(client, logins, data):
    before = snapshot(data)
    rows = [
        {"subject": "wb-m1", "session_datetime": "2024-05-01T10:00:00Z"},
        {"subject": "wb-nobody", "session_datetime": "2024-05-01T10:00:00Z"},
        {"subject": "wb-m1", "session_datetime": "2024-03-31T02:30:00[Europe/Berlin]"},
    ]
    answer = client.post("/api/sessions", json=rows, auth=logins["writer"].auth)
    assert answer.status_code == 400, answer.text
    problems = answer.json()["problems"]
    assert {(p["row"], p["column"]) for p in problems} == {(2, "subject"), (3, "session_datetime")}
    assert any(p["value"] == "wb-nobody" and "unknown subject" in p["reason"] for p in problems)
    assert snapshot(data) == before


def test_post_conflict_is_409(client, logins, data):
    before = snapshot(data)
    rows = [{"subject": "wb-m1", "session_datetime": "2024-03-12T09:00:00Z", "session_note": "not the stored one"}]
    rows[0]["experimenter"] = "wb-bob"
    answer = client.post("/api/sessions", json=rows, auth=logins["writer"].auth)
    assert answer.status_code == 409, answer.text
    assert answer.json()["problems"][0]["row"] == 1
    assert snapshot(data) == before


def test_a_changed_value_of_a_qc_passed_session_is_refused_in_words_by_the_add_form_and_the_api(client, logins, data):
    from element_session.status import set_status

    log_in(client, logins["writer"])
    rows = [{"subject": "wb-m2", "session_datetime": "2024-08-07T10:00:00Z", "session_note": "checked"}]
    assert client.post("/api/sessions", json=rows, auth=logins["writer"].auth).status_code == 201
    stored = {"subject": "wb-m2", "session_datetime": "2024-08-07 10:00:00"}
    set_status(stored, "qc_passed", session_module=data.session)
    try:
        before = snapshot(data)
        answer = client.post("/api/sessions", json=[{**rows[0], "session_note": "late"}], auth=logins["writer"].auth)
        assert answer.status_code == 409, answer.text
        (problem,) = answer.json()["problems"]
        assert problem["column"] == "session_note" and "is qc_passed: it cannot be edited" in problem["reason"]
        assert problem["reason"].endswith(
            "reopen it first (set its status back to acquired, with a reason); adding never changes a stored session "
            "(after reopening, change it on its edit page)"
        )
        form = {"csrf_token": csrf(client, "/add"), "subject": "wb-m2", "session_datetime": "2024-08-07T10:00:00",
                "timezone": "UTC", "session_note": "late"}  # fmt: skip
        page = client.post("/add", data=form)
        assert page.status_code == 409, page.text
        errors = dict(re.findall(r'<span class="field-error" data-field="([^"]+)">([^<]+)</span>', page.text))
        assert errors["session_note"].endswith(
            "reopen it first (set its status back to acquired, with a reason); adding never changes a stored session "
            "(after reopening, change it on its edit page)"
        )
        for said in (answer.text, page.text):  # no command line or Python call for a web user
            assert "element-session status" not in said and "set_status(" not in said and "--reason" not in said
            assert "update1" not in said and "ingest" not in said
        assert_in_words(page.text)
        assert snapshot(data) == before
    finally:  # the other tests count the sessions of the fixture's subjects
        (data.session.Session & stored).delete(prompt=False)


@pytest.mark.parametrize(
    "body", ['"/etc/passwd"', "{}", '{"subject": "wb-m1"}', "[1, 2]", '[{"a": 1}, "x"]', "not json", "\xff", "null"]
)
def test_a_body_that_is_not_a_list_of_objects_is_400(client, logins, data, body):
    before = snapshot(data)
    answer = client.post("/api/sessions", content=body.encode("latin-1"), headers=JSON, auth=logins["writer"].auth)
    assert answer.status_code == 400, answer.text
    assert snapshot(data) == before


def test_a_body_over_the_limit_is_refused_before_it_is_read(client, logins, data, monkeypatch):
    from element_session.web import app as web_app

    monkeypatch.setattr(web_app, "MAX_BODY", 100)
    rows = [{"subject": "wb-m1", "session_datetime": "2024-06-01T10:00:00Z", "session_note": "x" * 200}]
    answer = client.post("/api/sessions", json=rows, auth=logins["writer"].auth)
    assert answer.status_code == 400 and "larger than" in answer.json()["problems"][0]["reason"]


def test_a_read_only_account_is_refused_every_write_with_403_and_nothing_is_stored(client, logins, data):
    before = snapshot(data)
    rows = [{"subject": "wb-m1", "session_datetime": "2024-06-01T10:00:00Z", "session_note": "refused"}]
    answer = client.post("/api/sessions", json=rows, auth=logins["reader"].auth)
    assert answer.status_code == 403, answer.text
    assert logins["reader"].user in answer.json()["error"] and logins["reader"].password not in answer.text
    log_in(client, logins["reader"])
    token = csrf(client, "/add")
    form = {"csrf_token": token, "subject": "wb-m1", "session_datetime": "2024-06-01T10:00:00", "timezone": "UTC"}
    page = client.post("/add", data=form)
    assert page.status_code == 403 and "refused" in page.text
    assert snapshot(data) == before


def test_a_write_refused_in_part_stores_nothing(client, logins, data):
    """The account may insert sessions but not notes: the whole ingest is one transaction, refused as a whole."""
    before = snapshot(data)
    without_note = [{"subject": "wb-m1", "session_datetime": "2024-06-02T10:00:00Z"}]
    with_note = [{"subject": "wb-m1", "session_datetime": "2024-06-03T10:00:00Z", "session_note": "refused"}]
    answer = client.post("/api/sessions", json=without_note + with_note, auth=logins["partial"].auth)
    assert answer.status_code == 403, answer.text
    assert logins["partial"].user in answer.json()["error"]
    assert snapshot(data) == before
    allowed = client.post("/api/sessions", json=without_note, auth=logins["partial"].auth)
    assert allowed.status_code == 201, allowed.text  # the same account may write what it is granted
    found = client.get("/api/sessions", params={"subject": "wb-m1", "since": "2024-06-02", "until": "2024-06-03"},
                       auth=logins["partial"].auth)  # fmt: skip
    assert found.json()["total"] == 1


# -- pages -----------------------------------------------------------------------------------------
def test_pages_show_no_data_without_a_login(client, data):
    for path in ("/", "/?subject=wb-m1", "/session?subject=wb-m1&session_datetime=2024-03-12T09:00:00Z",
                 "/subject?subject=wb-m1", "/add", "/api/sessions.csv"):  # fmt: skip
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code in (303, 401), (path, answer.status_code)
        assert "wb-m1" not in answer.text
    assert client.get("/", follow_redirects=False).headers["location"].startswith("/login")
    assert client.get("/login").status_code == 200


def test_login_logout_and_csrf(client, logins, data):
    assert client.post("/login", data={"username": logins["reader"].user, "password": logins["reader"].password},
                       follow_redirects=False).status_code == 403  # fmt: skip
    token = csrf(client, "/login")
    wrong = client.post("/login", data={"username": logins["reader"].user, "password": "no", "csrf_token": token})
    assert wrong.status_code == 401 and logins["reader"].user in wrong.text
    log_in(client, logins["reader"])
    cookie = client.cookies.get("element_session")
    assert cookie and logins["reader"].password not in cookie
    set_cookie = client.get("/login").headers.get("set-cookie", "")
    assert "httponly" in set_cookie.lower() and "samesite=lax" in set_cookie.lower()
    assert client.get("/").status_code == 200
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403  # no CSRF token
    assert client.get("/").status_code == 200  # still logged in
    answer = client.post("/logout", data={"csrf_token": csrf(client)}, follow_redirects=False)
    assert answer.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_the_cookie_is_secure_over_https_only(app, logins, data):
    with TestClient(app, base_url="https://testserver") as secure, TestClient(app) as plain:
        assert "secure" in secure.get("/login").headers["set-cookie"].lower()
        assert "secure" not in plain.get("/login").headers["set-cookie"].lower()
        log_in(secure, logins["reader"])
        assert secure.get("/").status_code == 200


def test_a_login_works_whichever_worker_answers(app, data, logins):
    other = create_app(data, b"test secret of this run")  # another worker process: same secret, own state
    with TestClient(app) as first, TestClient(other) as second:
        log_in(first, logins["reader"])
        second.cookies.update(first.cookies)
        assert second.get("/").status_code == 200
        third = TestClient(create_app(data, b"another serve"))
        third.cookies.update(first.cookies)
        assert third.get("/", follow_redirects=False).status_code == 303


def test_session_list_is_newest_first_filtered_and_paged(client, logins, data):
    log_in(client, logins["reader"])
    page = client.get("/", params={"subject": "wb-m1", "until": "2024-04-01"})  # the sessions of ROWS
    assert page.status_code == 200
    shown = re.findall(r'class="open" href="[^"]*">([^<]+)</a>', page.text)
    assert shown[:2] == ["2024-03-12 09:00:00 UTC", "2024-03-10 14:30:00 Europe/Berlin"]
    assert 'href="/api/sessions.csv?subject=wb-m1&amp;until=2024-04-01"' in page.text
    csv_text = client.get("/api/sessions.csv", params={"subject": "wb-m1"}).text
    assert csv_text.splitlines()[0].startswith("subject,session_datetime")
    bad = client.get("/", params={"since": "2024-13-01"})
    assert bad.status_code == 400 and "since" in bad.text


def test_a_filter_naming_an_unknown_subject_says_so_on_the_page_and_in_the_api(client, logins, data):
    log_in(client, logins["reader"])
    page = client.get("/", params=[("subject", "wb-m1"), ("subject", "wb-nobody"), ("project", "wb-none")])
    assert page.status_code == 200
    assert "subject &#39;wb-nobody&#39;: no such subject exists" in page.text
    assert "project &#39;wb-none&#39;: no such project exists" in page.text
    assert "no such" not in client.get("/", params={"subject": "wb-m1"}).text
    api = client.get("/api/sessions", params={"experimenter": "wb-who"}).json()
    assert api["sessions"] == [] and api["warnings"] == ["experimenter 'wb-who': no such experimenter exists"]
    assert "warnings" not in client.get("/api/sessions", params={"subject": "wb-m1"}).json()


def test_the_list_pages_50_sessions_newest_first(client, logins, data):
    rows = [
        {"subject": "wb-pg", "session_datetime": f"2020-01-{1 + i // 24:02d}T{i % 24:02d}:00:00Z"} for i in range(60)
    ]
    ingest("sessions", rows, pipeline=data)
    log_in(client, logins["reader"])
    first = client.get("/", params={"subject": "wb-pg"})
    second = client.get("/", params={"subject": "wb-pg", "page": "2"})
    shown = [re.findall(r'class="open" href="[^"]*">([^<]+)</a>', page.text) for page in (first, second)]
    assert [len(s) for s in shown] == [50, 10]
    assert shown[0] + shown[1] == sorted(shown[0] + shown[1], reverse=True)
    assert shown[0][0] == "2020-01-03 11:00:00 UTC" and shown[1][-1] == "2020-01-01 00:00:00 UTC"
    assert 'rel="next"' in first.text and 'rel="next"' not in second.text and 'rel="prev"' in second.text
    assert client.get("/", params={"subject": "wb-pg", "page": "0"}).status_code == 400


def test_session_page_shows_every_part_directory_downstream_and_jobs(client, logins, data, tmp_path, monkeypatch):
    from workflow.inventory import SessionInventory

    (tmp_path / "wb-m1" / "s1").mkdir(parents=True)
    monkeypatch.setenv("SESSION_ROOT_DIRS", str(tmp_path))
    key = {"subject": "wb-m1", "session_datetime": "2024-03-10T13:30:00+00:00"}
    result = SessionInventory().populate([{"subject": "wb-m1"}, {"subject": "wb-m2"}], reserve_jobs=True,
                                         suppress_errors=True)  # fmt: skip
    assert result["error_list"]  # wb-m2's directory is under no root: its job failed
    log_in(client, logins["reader"])
    page = client.get("/session", params=key)
    assert page.status_code == 200, page.text
    text = page.text
    assert "2024-03-10T13:30:00+00:00" in text and "2024-03-10T14:30:00+01:00 Europe/Berlin" in text
    assert "first, ✓" in text and "wb-ada, wb-bob" in text and "wb-maps" in text and ">rig<" in text
    assert "found:" in text and str(tmp_path / "wb-m1" / "s1") in text
    assert "inventory.SessionInventory" in text  # its row for this session
    assert '<dd id="status">acquired</dd>' in text  # no status row: acquired (docs/status.md)
    other = client.get("/session", params={"subject": "wb-m2", "session_datetime": "2024-03-11T14:00:00Z"})
    assert "not found" in other.text  # no such directory under the root
    jobs = re.search(r'<table id="jobs">.*?</table>', other.text, re.S)[0]
    assert "inventory.SessionInventory" in jobs and "<td>error</td>" in jobs and "wb-m2/s1" in jobs
    assert "<th>Since (UTC)</th>" in jobs  # when it failed, with its offset and age
    assert re.search(r"<td>\d{4}-\d\d-\d\dT[\d:.]+\+00:00 \(\d+\.\d min ago\)</td>", jobs)
    assert "<b>DirectoryNotFoundError</b>: directory &#39;wb-m2/s1&#39; of session subject=wb-m2" in jobs  # type first
    assert re.search(r"<details><summary>Traceback</summary><pre>Traceback \(most recent call last\)", jobs)
    assert_in_words(other.text)
    assert (
        client.get("/session", params={"subject": "wb-m1", "session_datetime": "2030-01-01T00:00:00Z"}).status_code
        == 404
    )
    assert client.get("/session", params={"subject": "wb-m1", "session_datetime": "soon"}).status_code == 400
    subject = client.get("/subject", params={"subject": "wb-m1"})
    assert subject.status_code == 200 and "<svg" in subject.text
    bars = re.findall(r"<title>week of (\S+): (\d+) sessions?</title>", subject.text)  # Sunday 10, Tuesday 12 March
    assert bars[:2] == [("2024-03-04", "1"), ("2024-03-11", "1")]
    legend = re.search(r'<ul class="legend".*?</ul>', subject.text, re.S)[0]  # coloured by project, named below
    colour = {
        p: c
        for c, p in re.findall(r'<span class="swatch (project-\w+)" aria-hidden="true"></span>([^<]+)</li>', legend)
    }
    assert set(colour) == {"wb-maps", "no project"} and len(set(colour.values())) == 2
    parts = re.findall(r'<rect class="(project-\w+)"[^>]*><title>([^<]+): \d+ sessions?</title>', subject.text)
    assert parts[0] == (colour["wb-maps"], "wb-maps") and parts[1] == (colour["no project"], "no project")
    shown = re.findall(r'<li><a href="/session\?[^"]*">([^<]+)</a>', subject.text)
    assert shown[-2:] == ["2024-03-12 09:00:00 UTC", "2024-03-10 14:30:00 Europe/Berlin"]  # newest first, local


def test_add_form_validates_as_ingest_and_shows_errors_next_to_fields(client, logins, data):
    log_in(client, logins["writer"])
    before = snapshot(data)
    form = {"csrf_token": csrf(client, "/add"), "subject": "wb-nobody", "session_datetime": "2024-03-31T02:30:00",
            "timezone": "Europe/Berlin", "session_id": "1.5", "attr_name": ["rig", ""],
            "attr_value": ["C", ""]}  # fmt: skip
    page = client.post("/add", data=form)
    assert page.status_code == 400
    errors = dict(re.findall(r'<span class="field-error" data-field="([^"]+)">([^<]+)</span>', page.text))
    assert "does not exist" in errors["session_datetime"] and "whole number" in errors["session_id"]
    assert snapshot(data) == before
    form |= {"subject": "wb-m2", "session_datetime": "2024-07-01T10:00:00", "session_id": "4",
             "experimenter": "wb-ada; wb-bob"}  # fmt: skip
    added = client.post("/add", data=form, follow_redirects=False)
    assert added.status_code == 303, added.text
    rows = client.get("/api/sessions", params={"subject": "wb-m2", "since": "2024-07-01"}).json()["sessions"]
    assert [(r["session_datetime"], r["experimenters"], r["attributes"]) for r in rows] == [
        ("2024-07-01T08:00:00+00:00", ["wb-ada", "wb-bob"], {"rig": "C"})
    ]
    assert client.post("/add", data={**form, "csrf_token": "forged"}).status_code == 403


def test_edit_note_and_attributes_then_delete_with_a_preview(client, logins, data):
    log_in(client, logins["writer"])
    rows = [{"subject": "wb-m2", "session_datetime": "2024-08-01T10:00:00Z", "session_note": "old", "attr.a": "1",
             "attr.b": "2"}]  # fmt: skip
    assert client.post("/api/sessions", json=rows, auth=logins["writer"].auth).status_code == 201
    key = {"subject": "wb-m2", "session_datetime": "2024-08-01T10:00:00+00:00"}
    token = csrf(client, "/")
    too_long = client.post("/edit", params=key, data={"csrf_token": token, "session_note": "x" * 2000,
                                                      "attr_name": ["a"], "attr_value": ["1"]})  # fmt: skip
    assert too_long.status_code == 400 and "longer than" in too_long.text
    saved = client.post("/edit", params=key, data={"csrf_token": token, "session_note": "new",
                                                   "attr_name": ["a", "c"], "attr_value": ["10", "3"]},
                        follow_redirects=False)  # fmt: skip
    assert saved.status_code == 303, saved.text
    (record,) = client.get("/api/sessions", params={"subject": "wb-m2", "since": "2024-08-01"}).json()["sessions"]
    assert record["session_note"] == "new" and record["attributes"] == {"a": "10", "c": "3"}
    preview = client.get("/delete", params=key)
    assert preview.status_code == 200
    counts = dict(re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td></tr>", preview.text))
    assert counts == {"The session": "1", "Zone of its start time": "1", "Note": "1", "Attributes": "2"}
    unconfirmed = client.post("/delete", params=key, data={"csrf_token": token})
    assert unconfirmed.status_code == 400
    done = client.post("/delete", params=key, data={"csrf_token": token, "confirm": "yes"}, follow_redirects=False)
    assert done.status_code == 303
    assert client.get("/session", params=key).status_code == 404


# -- hostile input ----------------------------------------------------------------------------------
TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
NAMES = st.sampled_from(["search", "subject", "project", "experimenter", "since", "until", "timezone", "attribute",
                         "value", "limit", "offset", "page", "x"])  # fmt: skip
VALUES = st.one_of(TEXT, st.sampled_from(["-1", "0", "2024-02-30", "2024-03-31T02:30[Europe/Berlin]", "%", "'", "\\"]))
CELLS = st.one_of(st.none(), TEXT, st.integers(), st.floats(), st.booleans(), st.lists(TEXT, max_size=3),
                  st.dictionaries(TEXT, TEXT, max_size=2))  # fmt: skip
COLUMNS = st.sampled_from(["subject", "session_datetime", "session_id", "experimenter", "project", "session_dir",
                           "session_note", "attr.rig", "attr.", "other"])  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.lists(st.tuples(NAMES, VALUES), max_size=5))
def test_hostile_query_strings_are_never_a_server_error(client, logins, data, params):
    for path in ("/api/sessions", "/api/sessions.csv"):
        answer = client.get(path, params=params, auth=logins["reader"].auth)
        assert answer.status_code in (200, 400), (params, answer.status_code, answer.text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.lists(st.tuples(st.one_of(NAMES, st.sampled_from(["session_datetime", "session_id"])), VALUES),
                       max_size=5))  # fmt: skip
def test_hostile_query_strings_of_pages_are_never_a_server_error(app, logins, data, params):
    with TestClient(app) as client:
        log_in(client, logins["reader"])
        for path in ("/", "/session", "/subject", "/edit", "/delete"):
            answer = client.get(path, params=params, follow_redirects=False)
            assert answer.status_code in (200, 400, 404), (path, params, answer.status_code, answer.text[:500])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.dictionaries(COLUMNS, CELLS, max_size=6), min_size=1, max_size=3), zone=VALUES)
def test_hostile_posted_rows_are_never_a_server_error_and_change_nothing_when_refused(client, logins, data, rows, zone):
    before = snapshot(data)
    body = json.dumps(rows)  # NaN and Infinity as Python writes them: the server must refuse or read them
    answer = client.post("/api/sessions", content=body, params={"timezone": zone}, headers=JSON,
                         auth=logins["writer"].auth)  # fmt: skip
    assert answer.status_code in (200, 201, 400, 409), (rows, answer.status_code, answer.text)
    if answer.status_code >= 400:
        assert snapshot(data) == before


def test_an_attribute_whose_name_is_emptied_is_removed_as_the_edit_page_says(client, logins, data):
    log_in(client, logins["writer"])
    rows = [{"subject": "wb-m2", "session_datetime": "2024-08-02T10:00:00Z", "attr.a": "1", "attr.b": "2"}]
    assert client.post("/api/sessions", json=rows, auth=logins["writer"].auth).status_code == 201
    key = {"subject": "wb-m2", "session_datetime": "2024-08-02T10:00:00+00:00"}
    assert "whose name is emptied is removed" in client.get("/edit", params=key).text
    form = {"csrf_token": csrf(client), "session_note": "", "attr_name": ["", "b"], "attr_value": ["1", "2"]}
    saved = client.post("/edit", params=key, data=form, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    (record,) = client.get("/api/sessions", params={"subject": "wb-m2", "since": "2024-08-02",
                                                    "until": "2024-08-02T12:00"}).json()["sessions"]  # fmt: skip
    assert record["attributes"] == {"b": "2"}


def test_every_answer_carries_the_security_headers(client, logins, data):
    answers = [client.get("/login"), client.get("/", follow_redirects=False), client.get("/static/style.css"),
               client.get("/api/sessions", auth=logins["reader"].auth), client.get("/api/sessions")]  # fmt: skip
    log_in(client, logins["reader"])
    answers += [client.get("/"), client.get("/nowhere"), client.get("/", params={"since": "never"})]
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, answer.url
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])  # fmt: skip
def test_an_api_write_that_a_cross_site_form_could_send_is_refused(client, logins, data, content_type):
    """A browser with cached Basic credentials could post a text/plain form cross-site: only JSON is taken."""
    before = snapshot(data)
    rows = json.dumps([{"subject": "wb-m1", "session_datetime": "2024-09-01T10:00:00Z", "session_note": "forged"}])
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.post("/api/sessions", content=rows, headers=headers, auth=logins["writer"].auth)
    assert answer.status_code == 403, answer.text
    assert "application/json" in answer.json()["error"]
    assert snapshot(data) == before
    sent = client.post("/api/sessions", content=rows, headers={"Content-Type": "application/json; charset=utf-8"},
                       auth=logins["writer"].auth)  # fmt: skip
    assert sent.status_code in (200, 201), sent.text  # 200 once an earlier case added it


def test_api_sessions_carry_the_attributes_object_values_as_the_command_prints_them(client, logins, data, command):
    key = {"subject": "wb-m1", "session_datetime": "2024-03-12 09:00:00"}
    blob = {"gain": [1.5, 2.0], "unit": "mV"}
    data.session.Session.Attribute.insert1({**key, "attribute_name": "calibration", "attribute_blob": blob})
    try:
        printed = json.loads(command("sessions", "--subject", "wb-m1", "--until", "2024-03-12", "--format", "json").out)
        answer = client.get("/api/sessions", params={"subject": "wb-m1", "until": "2024-03-12"},
                            auth=logins["reader"].auth)  # fmt: skip
        assert answer.json()["sessions"] == printed
        (stored,) = [s for s in printed if s["session_datetime"] == "2024-03-12T09:00:00+00:00"]
        assert stored["attribute_blobs"]["calibration"]  # the object value is there, in the one JSON form
    finally:
        (data.session.Session.Attribute & {**key, "attribute_name": "calibration"}).delete_quick()


def test_a_bad_filter_keeps_the_form_with_the_reason_next_to_its_field_and_every_subject_kept(client, logins, data):
    log_in(client, logins["reader"])
    bad = client.get("/", params=[("subject", "wb-m1"), ("subject", "wb-m2"), ("since", "2024-13-01"),
                                  ("until", "2024-04-01")])  # fmt: skip
    assert bad.status_code == 400
    assert '<form method="get" action="/" class="filters">' in bad.text
    errors = dict(re.findall(r'<span class="field-error" data-field="([^"]+)">([^<]+)</span>', bad.text))
    assert list(errors) == ["since"] and "impossible date" in errors["since"]
    assert re.findall(r'<input name="subject" value="([^"]*)"', bad.text) == ["wb-m1", "wb-m2"]
    assert 'name="until" value="2024-04-01"' in bad.text and "includes that whole day" in bad.text
    good = client.get("/", params=[("subject", "wb-m1"), ("subject", "wb-m2"), ("until", "2024-03-12")])
    assert re.findall(r'<input name="subject" value="([^"]*)"', good.text) == ["wb-m1", "wb-m2"]
    shown = re.findall(r'class="open" href="[^"]*">([^<]+)</a>', good.text)
    assert "2024-03-12 09:00:00 UTC" in shown  # until a date: that whole day
    assert int(re.search(r'<span id="total">(\d+)</span>', good.text)[1]) == 3


def test_the_add_form_asks_for_the_zone_and_says_what_was_stored(client, logins, data):
    log_in(client, logins["writer"])
    form_page = client.get("/add")
    assert re.search(r'<input name="timezone" type="text" value=""[^>]* required>', form_page.text), form_page.text
    before = snapshot(data)
    form = {"csrf_token": csrf(client, "/add"), "subject": "wb-m2", "session_datetime": "2024-10-01T10:00:00"}
    refused = client.post("/add", data=form)
    assert refused.status_code == 400 and snapshot(data) == before  # never UTC by surprise
    errors = dict(re.findall(r'<span class="field-error" data-field="([^"]+)">([^<]+)</span>', refused.text))
    assert "required" in errors["timezone"]
    added = client.post("/add", data={**form, "timezone": "America/New_York"})  # followed to the list
    assert added.status_code == 200 and added.url.path == "/"
    flash = re.search(r'<p class="flash" role="status" id="flash">([^<]+)</p>', added.text)[1]
    assert flash.startswith("Added") and "2024-10-01T14:00:00+00:00 (UTC)" in flash
    assert "2024-10-01T10:00:00-04:00 America/New_York" in flash
    marked = re.findall(r'<tr class="marked" aria-current="true">.*?class="open" href="[^"]*">([^<]+)</a>', added.text,
                        re.S)  # fmt: skip
    assert marked == ["2024-10-01 10:00:00 America/New_York"]
    assert "flash" not in client.get("/").text  # shown once
    again = client.post("/add", data={**form, "timezone": "America/New_York"})
    assert '<p class="warning" role="status" id="flash">Already present, nothing changed: ' in again.text  # not green


def test_a_lab_zone_given_to_serve_is_preset_and_labelled(data, logins):
    with TestClient(create_app(data, b"test secret of this run", timezone="Europe/Berlin")) as lab:
        log_in(lab, logins["writer"])
        form_page = lab.get("/add").text
        assert "the lab&#39;s zone, Europe/Berlin" in form_page
        assert re.search(r'<input name="timezone" type="text" value="Europe/Berlin"', form_page)


def test_a_second_session_number_is_refused_in_the_form_naming_the_session_that_has_it(client, logins, data):
    log_in(client, logins["writer"])
    before = snapshot(data)
    form = {"csrf_token": csrf(client, "/add"), "subject": "wb-m1", "session_datetime": "2024-10-02T10:00:00",
            "timezone": "UTC", "session_id": "1"}  # fmt: skip
    page = client.post("/add", data=form)
    assert page.status_code == 409, page.text
    errors = dict(re.findall(r'<span class="field-error" data-field="([^"]+)">([^<]+)</span>', page.text))
    assert "already taken by session subject=wb-m1, session_datetime=2024-03-10T13:30:00+00:00" in errors["session_id"]
    assert snapshot(data) == before


def test_edit_and_delete_end_with_a_message_on_the_next_page(client, logins, data):
    log_in(client, logins["writer"])
    rows = [{"subject": "wb-m2", "session_datetime": "2024-08-03T10:00:00Z", "session_note": "old"}]
    assert client.post("/api/sessions", json=rows, auth=logins["writer"].auth).status_code == 201
    key = {"subject": "wb-m2", "session_datetime": "2024-08-03T10:00:00+00:00"}
    token = csrf(client)
    saved = client.post("/edit", params=key, data={"csrf_token": token, "session_note": "new"})
    assert saved.url.path == "/session" and '<p class="flash" role="status" id="flash">Saved.</p>' in saved.text
    same = client.post("/edit", params=key, data={"csrf_token": token, "session_note": "new"})
    assert '<p class="warning" role="status" id="flash">Nothing to save' in same.text  # not styled as done
    deleted = client.post("/delete", params=key, data={"csrf_token": token, "confirm": "yes"})
    assert deleted.url.path == "/" and "Deleted the session subject=wb-m2, session_datetime=2024-08-03T10:00:00" in (
        deleted.text
    )


def test_a_read_only_account_is_offered_no_add_edit_or_delete(client, logins, data):
    key = {"subject": "wb-m1", "session_datetime": "2024-03-12T09:00:00+00:00"}
    log_in(client, logins["reader"])
    assert 'href="/add"' not in client.get("/").text
    session_page = client.get("/session", params=key).text
    assert 'href="/edit' not in session_page and 'href="/delete' not in session_page
    assert "may read this session but not change it" in session_page
    add_page = client.get("/add").text
    assert 'id="may-not-add"' in add_page and 'class="add"' not in add_page
    log_in(client, logins["partial"])  # may insert sessions, not notes: may add, not edit or delete
    assert 'href="/add"' in client.get("/").text
    session_page = client.get("/session", params=key).text
    assert 'href="/edit' not in session_page and 'href="/delete' not in session_page
    log_in(client, logins["writer"])
    session_page = client.get("/session", params=key).text
    assert 'href="/edit' in session_page and 'href="/delete' in session_page


@pytest.mark.parametrize(("params", "reason"), [
    ({"offset": "-5"}, "offset must be a whole number 0 or more"),
    ({"limit": "10001"}, "limit must be a whole number from 0 to 10,000"),
    ({"page": "0"}, "page must be a whole number 1 or more"),
    ({"offset": str(2**62 + 1)}, "offset must be at most 4,611,686,018,427,387,904"),  # a whole number 0 or more
    ({"page": str(2**40 + 1)}, "page must be at most 1,099,511,627,776"),
])  # fmt: skip
def test_paging_errors_are_in_words(client, logins, params, reason):
    answer = client.get("/api/sessions", params=params, auth=logins["reader"].auth)
    assert answer.status_code == 400 and answer.json()["problems"][0]["reason"] == reason


def test_requests_of_one_account_at_the_same_time_use_a_small_pool_of_its_connections(data, logins):
    import threading

    from element_session.web.accounts import Accounts, Credentials

    accounts = Accounts(data, data.session.Session.connection, b"k" * 32, pool=2)
    reader = Credentials(logins["reader"].user, logins["reader"].password)
    inside, release = threading.Barrier(3), threading.Event()
    seen = []

    def request() -> None:
        with accounts.use(reader) as user:
            seen.append(id(user.connection))
            inside.wait(timeout=60)  # two requests at once: two connections
            release.wait(timeout=60)

    threads = [threading.Thread(target=request) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        inside.wait(timeout=60)
        assert len(set(seen)) == 2
        third_done = threading.Event()

        def third() -> None:  # the pool is full: it waits for one of them, and opens no third
            with accounts.use(reader) as user:
                seen.append(id(user.connection))
            third_done.set()

        waiter = threading.Thread(target=third)
        waiter.start()
        assert not third_done.wait(timeout=1)
        release.set()
        waiter.join(timeout=60)
        assert third_done.is_set() and len(set(seen)) == 2
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=60)
        accounts.close()


def test_the_api_pages_in_the_database_where_it_orders_keys_as_python_and_sorts_here_otherwise(
    data, logins, command, monkeypatch
):
    from element_session import query

    assert query.database_orders_keys(data.session)  # the private servers order key text by code point
    printed = json.loads(command("sessions", "--subject", "wb-m1", "--subject", "wb-m2", "--format", "json").out)
    params = [("subject", "wb-m1"), ("subject", "wb-m2"), ("limit", "2"), ("offset", "1")]
    pages = []
    for orders in (True, False):
        monkeypatch.setattr(query, "database_orders_keys", lambda _module, orders=orders: orders)
        with TestClient(create_app(data, b"test secret of this run")) as fresh:
            pages.append(fresh.get("/api/sessions", params=params, auth=logins["reader"].auth).json())
    assert {k: v for k, v in pages[0].items() if k != "next"} == {
        "sessions": printed[1:3], "total": len(printed), "total_exact": True, "limit": 2, "offset": 1
    }  # fmt: skip
    assert pages[0] == pages[1]


def test_numbered_pages_a_page_size_and_pick_lists(client, logins, data):
    rows = [
        {"subject": "wb-pg", "session_datetime": f"2021-01-{1 + i // 24:02d}T{i % 24:02d}:00:00Z"} for i in range(30)
    ]
    ingest("sessions", rows, pipeline=data)
    log_in(client, logins["writer"])
    page = client.get("/", params={"subject": "wb-pg", "since": "2021-01-01", "until": "2021-01-31", "limit": "25"})
    assert '<option value="25" selected>' in page.text
    numbers = re.findall(r'<a (?:aria-current="page" )?href="/\?([^"]*)">(\d+)</a>', page.text)
    assert [n for _, n in numbers] == ["1", "2"] and all("limit=25" in link for link, _ in numbers)
    assert '<a aria-current="page" href="/?' in page.text
    second = client.get("/", params={"subject": "wb-pg", "since": "2021-01-01", "until": "2021-01-31", "limit": "25",
                                     "page": "2"})  # fmt: skip
    assert len(re.findall(r'class="open"', second.text)) == 5
    for kind, name in (("subjects", "wb-m1"), ("projects", "wb-maps"), ("experimenters", "wb-ada")):
        assert re.search(f'<datalist id="known-{kind}">[^/]*<option value="{name}">', page.text), kind
    assert 'list="known-subjects"' in client.get("/add").text


def test_the_jobs_page_lists_failed_keys_and_lets_allowed_accounts_clear_them(client, logins, data, monkeypatch):
    from workflow.inventory import SessionInventory

    monkeypatch.setenv("SESSION_ROOT_DIRS", "/nonexistent-root")
    SessionInventory().populate({"subject": "wb-m2"}, reserve_jobs=True, suppress_errors=True)
    assert len(SessionInventory.jobs & {"subject": "wb-m2", "status": "error"}) >= 1
    log_in(client, logins["reader"])
    shown = client.get("/jobs", params={"table": "inventory.SessionInventory"})
    assert shown.status_code == 200 and "<b>DirectoryNotFoundError</b>" in shown.text
    assert "Clear this error" not in shown.text  # the reader may not delete from the jobs table
    assert 'href="/jobs"' in shown.text
    assert re.search(r"<td>subject=wb-m2, session_datetime=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00</td>", shown.text)
    assert_in_words(shown.text)
    log_in(client, logins["writer"])
    shown = client.get("/jobs", params={"table": "inventory.SessionInventory"})
    form = re.search(r'<form method="post" action="/jobs" class="clear-one">(.*?)</form>', shown.text, re.S)[1]
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form))
    assert fields["k.subject"] in SUBJECTS and "k.session_datetime" in fields
    assert "Clear all errors of inventory.SessionInventory" in shown.text
    before = len(SessionInventory.jobs & {"status": "error"})
    done = client.post("/jobs", data=fields)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", fields["k.session_datetime"])  # as shown
    cleared_one = f"Cleared the error of subject={fields['k.subject']}, session_datetime={fields['k.session_datetime']}"
    assert done.status_code == 200 and cleared_one in done.text  # the key as the page shows it: UTC, with +00:00
    assert '<p class="flash" role="status" id="flash">Cleared the error' in done.text
    assert len(SessionInventory.jobs & {"status": "error"}) == before - 1
    all_cleared = client.post("/jobs", data={"csrf_token": fields["csrf_token"], "table": "inventory.SessionInventory"})
    assert "Cleared every error" in all_cleared.text
    none_left = client.post("/jobs", data={"csrf_token": fields["csrf_token"], "table": "inventory.SessionInventory"})
    nothing = '<p class="warning" role="status" id="flash">Cleared every error of inventory.SessionInventory: 0 key(s)'
    assert nothing in none_left.text  # nothing cleared: not styled as done
    assert len(SessionInventory.jobs & {"status": "error"}) == 0


def test_column_headers_sort_the_list_in_the_database_and_the_order_is_in_the_url(client, logins, data):
    log_in(client, logins["reader"])
    window = [("subject", "wb-m1"), ("subject", "wb-m2"), ("until", "2024-03-12")]
    default = client.get("/", params=window).text
    links = dict((label, link) for link, label in re.findall(r'<a class="sort" href="/\?([^"]+)">([^<]+)</a>', default))
    assert "sort=start" in links["Start (local) ▼"] and "sort=-subject" in links["Subject"]
    shown = {}
    for sort in ("-start", "start", "subject", "-subject"):
        page = client.get("/", params=[*window, ("sort", sort)]).text
        shown[sort] = re.findall(r'class="open" href="[^"]*">([^<]+)</a>', page)
    assert shown["-start"] == [
        "2024-03-12 09:00:00 UTC",
        "2024-03-11 09:00:00 -05:00",
        "2024-03-10 14:30:00 Europe/Berlin",
    ]
    assert shown["start"] == shown["-start"][::-1]
    assert shown["subject"] == [shown["-start"][2], shown["-start"][0], shown["-start"][1]]  # wb-m1 oldest first
    assert shown["-subject"] == shown["subject"][::-1]
    assert 'aria-sort="ascending"' in client.get("/", params=[*window, ("sort", "subject")]).text


def test_the_search_field_and_the_api_search_as_find_sessions_and_the_command(client, logins, data, command):
    from element_session.query import find_sessions

    for text in ("FIRST, ✓", "wb-BOB", "maps", "b", "%", "x'_\\"):  # a note, a person, a project, a rig, wildcards
        printed = json.loads(command("sessions", "--search", text, "--format", "json").out)
        answer = client.get("/api/sessions", params={"search": text}, auth=logins["reader"].auth)
        assert answer.status_code == 200, answer.text
        assert answer.json()["sessions"] == printed, text
        assert answer.json()["total"] == len(find_sessions(data.session, search=text))
    found = client.get("/api/sessions", params={"search": "first, ✓"}, auth=logins["reader"].auth).json()
    assert [s["session_note"] for s in found["sessions"]] == ["first, ✓"]
    percent = client.get("/api/sessions", params={"search": "%", "limit": 10000}, auth=logins["reader"].auth).json()
    every = client.get("/api/sessions", params={"limit": 1}, auth=logins["reader"].auth).json()["total"]
    assert percent["total"] < every  # '%' matches itself, not everything (other tests may store a '%')
    for found in percent["sessions"]:
        texts = [found["subject"], found["session_note"] or "", *found["experimenters"], *found["projects"]]
        assert any("%" in text for text in [*texts, *map(str, found["attributes"].values())]), found
    rigs = client.get("/api/sessions", params=[("search", "B"), ("subject", "wb-m2")], auth=logins["reader"].auth)
    assert [s["attributes"].get("rig") for s in rigs.json()["sessions"]][:1] == ["B"]
    log_in(client, logins["reader"])
    page = client.get("/", params={"search": "WB-ADA", "until": "2024-04-01"})
    assert page.status_code == 200
    assert re.search(r'<input type="search" name="search" value="WB-ADA"', page.text)
    shown = re.findall(r'class="open" href="[^"]*">([^<]+)</a>', page.text)
    assert shown == ["2024-03-12 09:00:00 UTC", "2024-03-10 14:30:00 Europe/Berlin"]  # wb-ada's sessions
    assert 'href="/api/sessions.csv?search=WB-ADA&amp;until=2024-04-01"' in page.text
    nul = client.get("/api/sessions", params={"search": "a\x00"}, auth=logins["reader"].auth)
    assert nul.status_code == 400 and nul.json()["problems"][0]["column"] == "search"


def test_sessions_with_a_failed_job_are_marked_in_the_list_linking_to_their_jobs(client, logins, data, monkeypatch):
    from workflow.inventory import SessionInventory

    monkeypatch.setenv("SESSION_ROOT_DIRS", "/nonexistent-root")
    SessionInventory().populate({"subject": "wb-m2"}, reserve_jobs=True, suppress_errors=True)
    failed = (SessionInventory.jobs & {"subject": "wb-m2", "status": "error"}).keys()
    assert failed
    try:
        log_in(client, logins["reader"])
        page = client.get("/", params=[("subject", "wb-m1"), ("subject", "wb-m2"), ("until", "2024-03-31")]).text
        rows = re.findall(r"<tr[^>]*>(.*?)</tr>", page.split("<tbody>")[1], re.S)
        marked = [re.search(r'class="open" href="([^"]*)"', row)[1] for row in rows if 'class="failed"' in row]
        assert marked == ["/session?subject=wb-m2&amp;session_datetime=2024-03-11T14%3A00%3A00%2B00%3A00"]
        link = re.search(r'<a class="failed" href="([^"]*)"[^>]*>(.*?)</a>', page, re.S)
        assert link[1] == marked[0] + "#jobs" and "a job of this session failed" in link[2]
        assert_in_words(page)
        subject = client.get("/subject", params={"subject": "wb-m2"}).text  # marked as in the list (issue 23)
        marks = re.findall(r'<li><a href="([^"]*)">[^<]*</a> <a class="failed" href="([^"]*)"', subject)
        assert len(marks) == len(failed) and (marked[0], marked[0] + "#jobs") in marks
        jobs = client.get(link[1].replace("&amp;", "&")).text
        assert "<b>DirectoryNotFoundError</b>" in re.search(r'<table id="jobs">.*?</table>', jobs, re.S)[0]
    finally:
        (SessionInventory.jobs & failed).delete_quick()
    after = client.get("/", params=[("subject", "wb-m2"), ("until", "2024-04-01")]).text
    assert 'class="failed"' not in after


def test_the_edit_form_changes_every_part_in_one_transaction_and_the_page_shows_the_history(client, logins, data):
    from element_session.status import set_status

    log_in(client, logins["writer"])
    rows = [{"subject": "wb-m2", "session_datetime": "2024-08-05T10:00:00Z", "session_note": "old", "attr.a": "1",
             "experimenter": "wb-ada", "project": "wb-maps", "session_dir": "wb-m2/old"}]  # fmt: skip
    assert client.post("/api/sessions", json=rows, auth=logins["writer"].auth).status_code == 201
    key = {"subject": "wb-m2", "session_datetime": "2024-08-05T10:00:00+00:00"}
    stored = {"subject": "wb-m2", "session_datetime": "2024-08-05 10:00:00"}

    def record() -> dict:
        (found,) = client.get("/api/sessions", params={"subject": "wb-m2", "since": "2024-08-05",
                                                       "until": "2024-08-05"}).json()["sessions"]  # fmt: skip
        return {k: found[k] for k in ("session_note", "experimenters", "projects", "session_dir", "attributes")}

    form = client.get("/edit", params=key).text
    assert re.search(r'name="experimenter" type="text" value="wb-ada"', form)
    assert re.search(r'name="session_dir" type="text" value="wb-m2/old"', form)
    token = csrf(client)
    before = snapshot(data)
    bad = client.post(
        "/edit",
        params=key,
        data={
            "csrf_token": token,
            "session_note": "x",
            "experimenter": "wb-nobody",
            "session_dir": "../outside",
            "attr_name": ["a"],
            "attr_value": ["1"],
        },
    )
    assert bad.status_code == 400
    errors = dict(re.findall(r'<span class="field-error" data-field="([^"]+)">([^<]+)</span>', bad.text))
    assert "wb-nobody" in errors["experimenter"] and ".." in errors["session_dir"]
    assert snapshot(data) == before  # nothing changed, the note neither
    note = "line one\r\n  line two\r\n"  # a browser sends a textarea's line breaks as CRLF
    saved = client.post("/edit", params=key, data={"csrf_token": token, "session_note": note,
                                                   "experimenter": "wb-ada; wb-bob", "project": "",
                                                   "session_dir": "wb-m2/new", "attr_name": ["a"],
                                                   "attr_value": ["10"]})  # fmt: skip
    assert saved.url.path == "/session" and '<p class="flash" role="status" id="flash">Saved.</p>' in saved.text
    assert record() == {"session_note": "line one\n  line two\n", "experimenters": ["wb-ada", "wb-bob"],
                        "projects": [], "session_dir": "wb-m2/new", "attributes": {"a": "10"}}  # fmt: skip
    assert '<dd id="note" class="note">line one\n  line two\n</dd>' in saved.text  # kept as written
    assert (
        '<textarea name="session_note" rows="5">\nline one\n  line two\n</textarea>'
        in client.get("/edit", params=key).text
    )  # the first line break after <textarea> is the page's: the note's own survive

    history = re.search(r'<ol class="history" id="history">(.*?)</ol>', saved.text, re.S)[1]
    changes = re.findall(r"<li>(.*?)</li>", history, re.S)
    whens = [re.match(r'<span class="when">(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC</span>, ', c)[1] for c in changes]
    assert len(changes) == 10 and whens == sorted(whens, reverse=True)  # newest first, the rest folded
    assert re.search(r'<details id="older-changes"><summary>\d+ older change\(s\)</summary>', saved.text)
    words = re.sub(r"<[^>]+>", "", saved.text.split('id="history"')[1])
    assert "changed Attributes: value 1 → 10" in words
    assert "added Experimenters" in words and "wb-bob" in words and "removed Projects" in words
    assert "added Directory: directory wb-m2/new" in words and "removed Directory: directory wb-m2/old" in words
    assert "added The session" in words  # the ingest, folded under the older changes
    assert_in_words(saved.text)

    set_status(stored, "qc_passed", session_module=data.session)
    before = snapshot(data)
    refused = client.post("/edit", params=key, data={"csrf_token": token, "session_note": "late change"})
    assert refused.url.path == "/session"
    flash = re.search(r'<p class="warning" role="status" id="flash">([^<]*)</p>', refused.text)[1]  # not green
    assert flash.startswith("Not saved: session subject=wb-m2") and "qc_passed" in flash and "reopen it first" in flash
    assert flash.endswith("reopen it first (set its status back to acquired, with a reason)")  # no code on a page
    assert snapshot(data) == before
    assert 'id="locked"' in client.get("/edit", params=key).text
    assert "(reason: " not in words
    set_status(stored, "acquired", reason="a late fix", session_module=data.session)
    reopened = client.get("/session", params=key).text
    words = re.sub(r"<[^>]+>", "", reopened.split('id="history"')[1])
    assert "changed Status: status qc_passed → acquired" in words
    assert "(reason: a late fix)" in words
    assert "reason (none) → a late fix" in words


def test_failed_jobs_are_read_with_one_query_whatever_the_page_size(data, monkeypatch):
    import datajoint as dj

    from element_session import query
    from element_session.session_frame import session_rows
    from element_session.web import service
    from element_session.web.accounts import UserPipeline

    m = data.session
    user = UserPipeline("test", m.Session.connection, data, m)
    tables = service._declared_jobs_tables(user)  # asked once, then kept a minute per connection
    assert tables
    service.failed_sessions(user, session_rows(m.Session(), m).records())  # the first reads the jobs tables' headings
    counts = []
    for subjects in (["wb-m1"], SUBJECTS):
        frame = session_rows(query.find_sessions(m, subject=subjects), m).records()
        statements: list[str] = []
        real = dj.Connection.query

        def counted(self, sql, *args, real=real, statements=statements, **kwargs):
            statements.append(sql)
            return real(self, sql, *args, **kwargs)

        monkeypatch.setattr(dj.Connection, "query", counted)
        marks = service.failed_sessions(user, frame)
        monkeypatch.setattr(dj.Connection, "query", real)
        assert len(marks) == len(frame) and len(frame) >= len(subjects)
        counts.append(len(statements))
    assert counts == [1, 1]


# -- paging at any size: capped counts, cursors -----------------------------------------------------
YEAR = [("since", "2019-01-01"), ("until", "2019-12-31")]  # the sessions of paged_data only


@pytest.fixture(scope="module")
def paged_data(data):
    """12 sessions of 2019: two subjects at the same six start times (ties broken by subject)."""
    rows = [{"subject": s, "session_datetime": f"2019-05-0{d}T0{h}:00:00Z"}
            for s in ("wb-m1", "wb-pg") for d in (1, 2, 3) for h in (1, 2)]  # fmt: skip
    ingest("sessions", rows, pipeline=data)
    return data


def _follow(client: TestClient, auth, params: list[tuple[str, str]]) -> tuple[list[dict], int]:
    """Every session of the API's answers from ``params`` on, following ``next``; and how many answers."""
    answer = client.get("/api/sessions", params=params, auth=auth).json()
    found, answers = list(answer["sessions"]), 1
    while answer["next"] is not None:
        answer = client.get(answer["next"], auth=auth).json()
        found += answer["sessions"]
        answers += 1
    return found, answers


def test_next_links_page_through_every_session_exactly_once_in_either_order_of_keys(
    paged_data, logins, command, monkeypatch
):
    from element_session import query

    printed = json.loads(command("sessions", "--since", "2019-01-01", "--until", "2019-12-31", "--format", "json").out)
    assert len(printed) == 12
    for orders in (True, False):  # the database pages with a key condition, or the keys are sorted here
        monkeypatch.setattr(query, "database_orders_keys", lambda _module, orders=orders: orders)
        with TestClient(create_app(paged_data, b"test secret of this run")) as fresh:
            found, answers = _follow(fresh, logins["reader"].auth, [*YEAR, ("limit", "5")])
            assert found == printed and answers == 3
            found, answers = _follow(fresh, logins["reader"].auth, [*YEAR, ("limit", "4")])
            assert found == printed and answers == 3  # the last full page says there is no next one
            tail, _ = _follow(fresh, logins["reader"].auth, [*YEAR, ("limit", "3"), ("offset", "7")])
            assert tail == printed[7:]


def test_keys_newest_first_after_a_cursor_are_each_session_once(paged_data):
    from element_session.query import find_sessions
    from element_session.web import paging

    found = find_sessions(paged_data.session, since="2019-01-01", until="2019-12-31")
    names = list(paged_data.session.Session.primary_key)
    order = ["session_datetime DESC", "subject DESC"]
    every = paging.page_keys(found, names, order, 100)
    assert len(every) == 12 and every == sorted(every, key=lambda k: (k[1], k[0]), reverse=True)
    walked, after = [], None
    while True:
        page = paging.page_keys(found, names, order, 5, after=after)
        walked += page[:5]
        if len(page) <= 5:
            break
        after = dict(zip(names, page[4], strict=True))
    assert walked == every


def test_a_count_past_the_cap_is_shown_in_words_with_a_next_page(client, logins, paged_data, monkeypatch):
    from element_session.web import paging

    monkeypatch.setattr(paging, "COUNT_CAP", 4)
    log_in(client, logins["reader"])
    page = client.get("/", params=[*YEAR, ("limit", "5")])
    assert page.status_code == 200 and 'More than <span id="total">4</span> session(s), 1\u20135 shown' in page.text
    assert 'rel="next"' in page.text and len(re.findall(r'class="open"', page.text)) == 5
    last = client.get("/", params=[*YEAR, ("limit", "5"), ("page", "3")])
    assert len(re.findall(r'class="open"', last.text)) == 2 and 'rel="next"' not in last.text
    assert '<a aria-current="page" href="/?' in last.text and ">3</a>" in last.text
    small = client.get("/", params=[("subject", "wb-m1"), ("since", "2019-01-01"), ("until", "2019-05-01T02:00Z")])
    assert '<span id="total">1</span> session(s)' in small.text and "More than" not in small.text
    answer = client.get("/api/sessions", params=[*YEAR, ("limit", "2")], auth=logins["reader"].auth).json()
    assert (answer["total"], answer["total_exact"], len(answer["sessions"])) == (4, False, 2)
    assert_in_words(page.text)


@pytest.mark.parametrize("after", ["nonsense", '["wb-m1"]', '["wb-m1", "not a time"]', "[null, null]"])
def test_a_cursor_that_is_not_one_is_refused_naming_after(client, logins, paged_data, after):
    answer = client.get("/api/sessions", params=[*YEAR, ("after", after)], auth=logins["reader"].auth)
    assert answer.status_code == 400, answer.text
    (problem,) = answer.json()["problems"]
    assert problem["column"] == "after" and problem["value"] == after
    assert "previous answer" in problem["reason"] or "not a key of a session" in problem["reason"]


def test_a_bad_parameter_without_a_field_is_named_in_the_message_with_its_value_and_reason(client, logins, data):
    log_in(client, logins["reader"])
    before = client.get("/", params={"subject": "wb-m1"}).text
    for params, said in (
        ({"page": "abc"}, 'parameter page, value "abc": page must be a whole number 1 or more'),
        ({"sort": "bogus"}, 'parameter sort, value "bogus": sort must be one of -start, start, subject, -subject'),
        ({"colour": "red"}, 'parameter colour, value "red": unknown parameter: use search, subject'),
    ):
        page = client.get("/", params={"subject": "wb-m1", **params})
        assert page.status_code == 400 and said in page.text.replace("&#34;", '"'), page.text
        assert '<form method="get" action="/" class="filters">' in page.text and 'value="wb-m1"' in page.text
        assert_in_words(page.text)
    both = client.get("/", params={"since": "2024-13-01", "sort": "bogus"})  # one next to its field, one in words
    errors = dict(re.findall(r'<span class="field-error" data-field="([^"]+)">([^<]+)</span>', both.text))
    assert list(errors) == ["since"] and "2 problem(s) in the query" in both.text
    assert 'parameter sort, value "bogus"' in both.text.replace("&#34;", '"') and "parameter since" not in both.text
    answer = client.get("/api/sessions", params={"page": "abc"}, auth=logins["reader"].auth)
    assert answer.json()["problems"] == [
        {"row": None, "column": "page", "value": "abc", "reason": "page must be a whole number 1 or more"}
    ]
    assert client.get("/", params={"subject": "wb-m1"}).text.count('class="open"') == before.count('class="open"')


def test_a_page_past_the_last_is_a_400_naming_page_and_the_number_of_pages(client, logins, paged_data, monkeypatch):
    log_in(client, logins["reader"])
    last = client.get("/", params=[*YEAR, ("limit", "5"), ("page", "3")])  # 12 sessions: pages of 5, 5 and 2
    assert last.status_code == 200 and len(re.findall(r'class="open"', last.text)) == 2
    for name, value in (("page", "4"), ("page", "99"), ("offset", "12")):
        past = client.get("/", params=[*YEAR, ("limit", "5"), (name, value)])
        assert past.status_code == 400, past.text
        said = f'parameter {name}, value "{value}": past the last page: 12 session(s) make 3 page(s) of 5'
        assert said in past.text.replace("&#34;", '"'), past.text
        assert (
            "4901" not in past.text and 'rel="prev"' not in past.text and 'name="since" value="2019-01-01"' in past.text
        )
    for name, value in (("offset", "12"), ("page", "4")):  # the API says it as plainly as the list
        api = client.get("/api/sessions", params=[*YEAR, ("limit", "5"), (name, value)], auth=logins["reader"].auth)
        reason = "past the last page: 12 session(s) make 3 page(s) of 5"
        assert api.status_code == 400 and api.json()["problems"] == [
            {"row": None, "column": name, "value": value, "reason": reason}
        ]
    last_one = client.get("/api/sessions", params=[*YEAR, ("limit", "5"), ("offset", "11")], auth=logins["reader"].auth)
    assert last_one.status_code == 200 and len(last_one.json()["sessions"]) == 1
    nothing = client.get("/api/sessions", params={"subject": "wb-nobody"}, auth=logins["reader"].auth)
    assert nothing.status_code == 200 and nothing.json()["sessions"] == []  # no match at offset 0: an empty list
    empty = client.get("/", params=[("subject", "wb-nobody"), ("page", "2")])
    assert empty.status_code == 400 and "0 session(s) make 1 page(s) of 50" in empty.text
    assert client.get("/", params={"subject": "wb-nobody"}).status_code == 200  # no match, page 1: an empty list
    from element_session.web import paging

    monkeypatch.setattr(paging, "COUNT_CAP", 4)  # a capped count: pages past it are still pages
    capped = client.get("/", params=[*YEAR, ("limit", "5"), ("page", "3")])
    assert capped.status_code == 200 and len(re.findall(r'class="open"', capped.text)) == 2


def test_status_filters_the_api_and_the_list_as_find_sessions_and_the_command(client, logins, data, command):
    from element_session.query import find_sessions
    from element_session.status import set_status

    (key,) = [
        k for k in (data.session.Session & {"subject": "wb-m2"}).proj().to_dicts() if k["session_datetime"].day == 11
    ]
    set_status(key, "qc_failed", session_module=data.session)  # wb-m2's session of ROWS (the only one failed)
    try:
        for states in (["qc_failed"], ["acquired"], ["qc_failed", "planned"]):
            options = [arg for state in states for arg in ("--status", state)]
            printed = json.loads(command("sessions", *options, "--format", "json").out)
            params = [("status", s) for s in states]
            answer = client.get("/api/sessions", params=params, auth=logins["reader"].auth)
            assert answer.status_code == 200, answer.text
            assert answer.json()["sessions"] == printed[:100] and answer.json()["total"] == len(
                find_sessions(data.session, status=states)
            )
        assert [s["subject"] for s in printed] == ["wb-m2"] and printed[0]["status"] == "qc_failed"
        bad = client.get("/api/sessions", params=[("status", "done")], auth=logins["reader"].auth)
        ran = command("sessions", "--status", "done")
        (problem,) = bad.json()["problems"]
        assert bad.status_code == 400 and (problem["column"], problem["value"]) == ("status", "done")
        assert f"--status: {problem['reason']} (value: 'done')" in ran.err, ran.err
        log_in(client, logins["reader"])
        page = client.get("/", params=[("status", "qc_failed")])
        assert page.status_code == 200 and re.findall(r'class="open" href="[^"]*">([^<]+)</a>', page.text) == [
            "2024-03-11 09:00:00 -05:00"
        ]
        assert '<option value="qc_failed" selected>' in page.text and '<option value="planned">' in page.text
        assert 'href="/api/sessions.csv?status=qc_failed"' in page.text
        assert re.findall(r'<td class="status">([^<]*)</td>', page.text) == ["qc_failed"]  # shown in the list too
        assert "2024-03-11 09:00:00 -05:00</a> · qc_failed" in client.get("/subject", params={"subject": "wb-m2"}).text
        refused = client.get("/", params=[("status", "done")])
        errors = dict(re.findall(r'<span class="field-error" data-field="([^"]+)">([^<]+)</span>', refused.text))
        assert refused.status_code == 400 and "not a session status" in errors["status"]
    finally:
        set_status(key, "acquired", reason="test over", session_module=data.session)


def test_posting_a_json_object_instead_of_a_list_is_refused_in_words(client, logins, data):
    answer = client.post("/api/sessions", json={"subject": "wb-m1"}, auth=logins["writer"].auth)
    assert answer.status_code == 400
    assert answer.json()["problems"][0]["value"] == "a JSON object"


def test_an_address_or_method_no_route_serves_is_answered_as_every_other_error(client, logins, data):
    unknown = client.get("/sessions/nonsense")  # no login needed to be told so: it shows nothing stored
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("text/html")
    assert '<link rel="stylesheet" href="/static/style.css">' in unknown.text and "<h1>Not found</h1>" in unknown.text
    assert "/sessions/nonsense is no address of this server" in unknown.text
    api = client.get("/api/nonsense", auth=logins["reader"].auth)
    assert api.status_code == 404 and api.json() == {"error": "/api/nonsense is no address of this server"}
    log_in(client, logins["reader"])
    token = csrf(client)
    wrong_method = client.post("/subject", data={"csrf_token": token})  # past the CSRF check: the route refuses it
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET, HEAD"
    assert "POST is not taken at /subject: it takes GET, HEAD" in wrong_method.text and "<h1>" in wrong_method.text
    api_method = client.post("/api/sessions.csv", json=[], auth=logins["writer"].auth)
    assert api_method.status_code == 405 and api_method.headers["allow"] == "GET, HEAD"
    assert api_method.json() == {"error": "POST is not taken at /api/sessions.csv: it takes GET, HEAD"}
    for answer in (unknown, wrong_method):
        assert_in_words(answer.text)


def test_no_such_subject_is_named_by_its_key_once(client, logins, data):
    log_in(client, logins["reader"])
    missing = client.get("/subject", params={"subject": "M999"})
    assert missing.status_code == 404 and "no subject M999" in missing.text and "subject=" not in missing.text
    assert_in_words(missing.text)


@pytest.mark.parametrize(("body", "where"), [(b"not json", "line 1, column 1"), (b"[\n  not json", "line 2, column 3")])
def test_a_body_that_is_not_json_is_refused_naming_where(client, logins, data, body, where):
    answer = client.post("/api/sessions", content=body, headers=JSON, auth=logins["writer"].auth)
    assert answer.status_code == 400
    reason = f"the body is not JSON: expecting a value at {where}"
    assert answer.json()["problems"] == [{"row": None, "column": None, "value": None, "reason": reason}]


def test_an_error_page_shows_the_navigation_of_the_account(client, logins, data):
    log_in(client, logins["writer"])
    assert 'href="/add"' in client.get("/").text  # the account's rights, kept for its connection
    for path in ("/subject?subject=M999", "/nonsense"):
        error = client.get(path)
        assert error.status_code == 404 and 'href="/add">Add a session</a>' in error.text, path
    log_in(client, logins["reader"])
    client.get("/")
    assert 'href="/add"' not in client.get("/nonsense").text


def test_a_time_without_an_offset_is_read_in_the_given_zone_else_the_labs_else_refused(client, logins, data):
    from element_session.web.service import NEEDS_ZONE

    rows = [{"subject": "wb-m2", "session_datetime": "2024-11-01T09:00", "session_note": "local"}]
    key = {"subject": "wb-m2", "session_datetime": "2024-11-01 08:00:00"}  # 09:00 in Berlin
    before = snapshot(data)
    refused = client.post("/api/sessions", json=rows * 2, auth=logins["writer"].auth)  # no zone: never UTC
    assert refused.status_code == 400, refused.text
    problems = refused.json()["problems"]
    assert [(p["row"], p["column"], p["value"], p["reason"]) for p in problems] == [
        (i, "session_datetime", "2024-11-01T09:00", NEEDS_ZONE) for i in (1, 2)
    ]
    assert snapshot(data) == before
    offset = [{**rows[0], "session_datetime": "2024-11-01T09:00:00+01:00[Europe/Berlin]"}]  # needs no zone
    try:
        with TestClient(create_app(data, b"test secret of this run", timezone="Europe/Berlin")) as lab:
            added = lab.post("/api/sessions", json=rows, auth=logins["writer"].auth)  # in the lab's zone
            assert added.status_code == 201, added.text
            for params in ({"timezone": "Europe/Berlin"}, {}):  # the same session, not one an hour apart
                again = lab.post("/api/sessions", json=rows, params=params, auth=logins["writer"].auth)
                assert again.status_code == 200 and again.json()["present"] == 1, again.text
            assert client.post("/api/sessions", json=offset, auth=logins["writer"].auth).status_code == 200
            window = {"subject": "wb-m2", "since": "2024-11-01T09:00", "until": "2024-11-01T09:00:01"}
            found = lab.get("/api/sessions", params=window, auth=logins["reader"].auth).json()["sessions"]
            assert [s["session_datetime"] for s in found] == ["2024-11-01T08:00:00+00:00"]  # filters alike
            assert lab.get("/api/sessions.csv", params=window, auth=logins["reader"].auth).text.count("\n") == 2
            log_in(lab, logins["reader"])
            listed = lab.get("/", params=window).text
            assert re.findall(r'class="open" href="[^"]*">([^<]+)</a>', listed) == ["2024-11-01 09:00:00 Europe/Berlin"]
            said = re.search(r'<small id="zone-rule">([^<]+)</small>', listed)[1]
            assert said == "A time or date without an offset is read in Europe/Berlin (the lab's zone)."
            in_utc = lab.get("/", params={**window, "timezone": "UTC"}).text
            assert "read in UTC." in in_utc and "2024-11-01 09:00:00" not in in_utc
        log_in(client, logins["reader"])
        assert "A time or date without an offset is read in UTC." in client.get("/").text
        assert client.get("/api/sessions", params=window, auth=logins["reader"].auth).json()["sessions"] == []
    finally:
        (data.session.Session & key).delete(prompt=False)


def test_a_session_that_passed_qc_is_not_deleted_as_it_is_not_edited(client, logins, data):
    from element_session.errors import SessionLockedError
    from element_session.status import set_status
    from element_session.web import service
    from element_session.web.accounts import Accounts, Credentials
    from element_session.web.logins import derive_key

    log_in(client, logins["writer"])
    rows = [{"subject": "wb-m2", "session_datetime": "2024-08-09T10:00:00Z", "session_note": "checked"}]
    assert client.post("/api/sessions", json=rows, auth=logins["writer"].auth).status_code == 201
    key = {"subject": "wb-m2", "session_datetime": "2024-08-09T10:00:00+00:00"}
    stored = {"subject": "wb-m2", "session_datetime": "2024-08-09 10:00:00"}
    set_status(stored, "qc_passed", session_module=data.session)
    try:
        before = snapshot(data)
        shown = client.get("/delete", params=key).text
        assert '<span id="status">qc_passed</span>' in shown and 'id="locked"' in shown
        assert 'class="danger"' not in shown and 'name="confirm"' not in shown  # no delete button
        refused = client.post("/delete", params=key, data={"csrf_token": csrf(client), "confirm": "yes"})
        assert refused.url.path == "/session"
        flash = re.search(r'<p class="warning" role="status" id="flash">([^<]*)</p>', refused.text)[1]
        assert flash.startswith("Not deleted: session subject=wb-m2") and "is qc_passed: it cannot be deleted" in flash
        assert flash.endswith("reopen it first (set its status back to acquired, with a reason)")
        assert snapshot(data) == before
        accounts = Accounts(data, data.session.Session.connection, derive_key(b"x", "cache"))
        try:
            writer = Credentials(*logins["writer"].auth)
            with accounts.use(writer) as user, pytest.raises(SessionLockedError, match="reopen it first"):
                service.delete_session(user, stored)  # the function every entry point calls
        finally:
            accounts.close()
        assert snapshot(data) == before
        set_status(stored, "acquired", reason="delete it", session_module=data.session)
        assert 'class="danger"' in client.get("/delete", params=key).text
        deleted = client.post("/delete", params=key, data={"csrf_token": csrf(client), "confirm": "yes"})
        assert deleted.url.path == "/" and "Deleted the session" in deleted.text
    finally:
        (data.session.Session & stored).delete(prompt=False)


@pytest.mark.parametrize("name", ["limit", "offset", "page", "after"])
@pytest.mark.parametrize("value", ["2", "abc"])
def test_the_csv_holds_every_selected_session_and_refuses_paging_parameters_naming_them(client, logins, data, name,
                                                                                         value):  # fmt: skip
    answer = client.get("/api/sessions.csv", params={"subject": "wb-m1", name: value}, auth=logins["reader"].auth)
    assert answer.status_code == 400, answer.text
    (problem,) = answer.json()["problems"]
    assert problem["column"] == name and problem["value"] == value
    assert problem["reason"].startswith("unknown parameter: use search, subject,")
    assert problem["reason"].endswith("(every selected session, not a page)")


def test_page_and_offset_together_are_refused_naming_both(client, logins, data):
    for path in ("/api/sessions", "/"):
        log_in(client, logins["reader"])
        answer = client.get(path, params={"page": "2", "offset": "5"}, auth=logins["reader"].auth)
        assert answer.status_code == 400, answer.text
        if path == "/":
            said = html.unescape(answer.text)
            assert 'parameter page, value "2": page and offset both say' in said
            assert 'parameter offset, value "5": page and offset both say' in said
        else:
            assert [p["column"] for p in answer.json()["problems"]] == ["page", "offset"]


def test_the_edit_and_delete_pages_name_the_session_by_its_subject_and_start(client, logins, data):
    log_in(client, logins["writer"])
    key = {"subject": "wb-m1", "session_datetime": "2024-03-12T09:00:00+00:00"}
    for path, heading in (("/edit", "Edit the session of wb-m1 starting 2024-03-12T09:00:00+00:00"),
                          ("/delete", "Delete the session of wb-m1 starting 2024-03-12T09:00:00+00:00?")):  # fmt: skip
        assert re.search(r"<h1>([^<]*)</h1>", client.get(path, params=key).text)[1] == heading


def test_the_session_page_shows_an_object_value_in_the_json_form_of_the_api(client, logins, data):
    import numpy as np

    key = {"subject": "wb-m1", "session_datetime": "2024-03-12 09:00:00"}
    blob = {"gain": np.array([1.5, 2.0]), "unit": "<mV>"}
    data.session.Session.Attribute.insert1({**key, "attribute_name": "calibration", "attribute_blob": blob})
    try:
        log_in(client, logins["reader"])
        page = client.get("/session", params={"subject": "wb-m1", "session_datetime": "2024-03-12T09:00:00+00:00"})
        cell = re.search(r"<tr><td>calibration</td><td>(.*?)</td></tr>", page.text)[1]
        shown = re.fullmatch(r' ?<code class="object-value">([^<]*)</code>', cell)[1]
        assert "&lt;mV&gt;" in shown and "array(" not in shown  # escaped, never a Python repr
        (api,) = client.get("/api/sessions", params={"subject": "wb-m1", "since": "2024-03-12T09:00",
                                                     "until": "2024-03-12T09:00:01"}).json()["sessions"]  # fmt: skip
        assert json.loads(html.unescape(shown)) == api["attribute_blobs"]["calibration"]
        assert api["attribute_blobs"]["calibration"]["gain"]["__type__"] == "ndarray"
    finally:
        (data.session.Session.Attribute & {**key, "attribute_name": "calibration"}).delete_quick()


@pytest.fixture(scope="module")
def by_number(connection, prefix):
    """The ``session_with_id`` variant served: its pipeline (a linking module) and a login that may write it."""
    import types

    from element_session.linking import drop_schema
    from tests.helpers import create_account, drop_account, lab_module_text
    from tests.web_accounts import WRITE, Login

    linking = types.ModuleType("web_by_number")
    sys.modules[linking.__name__] = linking  # activate() imports its linking module by name
    base = f"{prefix}wn{secrets.token_hex(2)}_"  # names of its own: other tests' id-variant schemas are not dropped
    exec(lab_module_text(base + "lab", base + "session"), linking.__dict__)  # noqa: S102 (our text)
    add_references(linking, ["wi-m1", "wi-m2"], [], [])
    ingest("sessions", [
        {"subject": "wi-m1", "session_id": 1, "session_datetime": "2024-05-01T10:00:00Z"},
        {"subject": "wi-m1", "session_id": 2, "session_datetime": "2024-05-03T10:00:00[Europe/Berlin]"},
        {"subject": "wi-m2", "session_id": 1, "session_datetime": "2024-05-02T10:00:00Z"},
    ], pipeline=linking)  # fmt: skip
    login = Login(f"wbi_{prefix[5:13]}", f"pw-{prefix}:x")
    create_account(connection, login.user, login.password, [base + "lab", base + "session"], WRITE)
    try:
        with TestClient(create_app(linking, b"test secret of this run")) as client:
            log_in(client, login)
            yield client
    finally:
        drop_account(connection, login.user)
        drop_schema(linking.session.schema)  # the variant module is activated once a process: free it for others
        drop_schema(linking.lab)
        del sys.modules[linking.__name__]


def test_adding_a_present_session_by_its_number_alone_says_already_present(by_number):
    form = {"csrf_token": csrf(by_number, "/add"), "subject": "wi-m1", "session_id": "2"}  # its start not given
    again = by_number.post("/add", data=form)
    assert again.status_code == 200, again.text
    flash = re.search(r'<p class="warning" role="status" id="flash">([^<]+)</p>', again.text)[1]
    assert flash.startswith("Already present, nothing changed: the session of wi-m1 starting 2024-05-03T08:00:00")
    assert "2024-05-03T10:00:00+02:00 Europe/Berlin" in flash  # its start in its own zone, as stored


def test_column_headers_sort_the_list_of_sessions_by_number_too(by_number):
    shown = {}
    for sort in ("-start", "start", "subject", "-subject"):
        page = by_number.get("/", params=[("sort", sort)]).text
        shown[sort] = re.findall(r'class="open" href="[^"]*">([^<]+)</a>', page)
    newest = ["2024-05-03 10:00:00 Europe/Berlin", "2024-05-02 10:00:00 UTC", "2024-05-01 10:00:00 UTC"]
    assert shown["-start"] == newest
    assert shown["start"] == shown["-start"][::-1]
    assert shown["subject"] == [shown["-start"][2], shown["-start"][0], shown["-start"][1]]  # wi-m1 1, 2, wi-m2 1
    assert shown["-subject"] == shown["subject"][::-1]


def test_a_window_backwards_keeps_the_form_with_the_reason_next_to_until_and_the_page_size(client, logins, data):
    log_in(client, logins["reader"])
    bad = client.get("/", params=[("subject", "wb-m1"), ("since", "2024-03-12"), ("until", "2024-03-10"),
                                  ("limit", "100")])  # fmt: skip
    assert bad.status_code == 400
    assert '<form method="get" action="/" class="filters">' in bad.text  # the list's form, not an error page
    errors = dict(re.findall(r'<span class="field-error" data-field="([^"]+)">([^<]+)</span>', bad.text))
    assert list(errors) == ["until"] and "until is not after since" in errors["until"]
    assert '<option value="100" selected>' in bad.text  # the page size asked for, kept for the next try
    assert "in the arguments" not in bad.text  # a query's parameters, as every other refusal names them
    api = client.get("/api/sessions", params={"attribute": "", "value": "A"})
    assert api.json()["error"] == "1 problem(s) in the query" and api.json()["problems"][0]["column"] == "value"


@pytest.mark.parametrize("name, values", [("limit", ["abc", "3"]), ("offset", ["1", "0"]), ("page", ["2", "1"]),
                                          ("after", ["x", "y"])])  # fmt: skip
def test_a_paging_parameter_given_twice_is_refused_as_a_filter_given_twice(client, logins, data, name, values):
    log_in(client, logins["reader"])
    params = [(name, v) for v in values]
    api = client.get("/api/sessions", params=params)
    assert api.status_code == 400, api.text
    assert {"column": name, "value": values[1], "reason": "given twice"}.items() <= api.json()["problems"][0].items()
    page = client.get("/", params=params)
    assert page.status_code == 400 and f"parameter {name}, value &#34;{values[1]}&#34;: given twice" in page.text


def test_the_edit_and_delete_pages_offer_no_form_to_an_account_that_may_not_change_sessions(client, logins, data):
    key = {"subject": "wb-m1", "session_datetime": "2024-03-12T09:00:00+00:00"}  # a bookmark, a link from a colleague
    log_in(client, logins["reader"])
    edit, delete = client.get("/edit", params=key).text, client.get("/delete", params=key).text
    assert 'id="may-not-edit"' in edit and 'method="post" action="/edit' not in edit
    assert 'id="may-not-delete"' in delete and 'method="post" action="/delete' not in delete
    assert 'id="preview"' in delete  # what a delete would remove is still shown
    log_in(client, logins["writer"])
    assert 'method="post" action="/edit' in client.get("/edit", params=key).text
    assert 'method="post" action="/delete' in client.get("/delete", params=key).text


def _hidden_fields(text: str, form_id: str) -> tuple[str, list[tuple[str, str]]]:
    """The action and the hidden fields of the form ``form_id`` of a page."""
    form = re.search(rf'<form method="post" action="([^"]+)"[^>]* id="{form_id}">(.*?)</form>', text, re.S)
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form[2])
    return html.unescape(form[1]), [(html.unescape(n), html.unescape(v)) for n, v in fields]


def test_a_form_sent_with_a_stale_token_or_after_the_login_ended_keeps_what_was_typed(app, client, logins, data):
    typed = "three lines\n<typed> with care ✓\nby hand"
    form = {"subject": "wb-m2", "session_datetime": "2024-11-05T10:00:00", "timezone": "Europe/Berlin",
            "session_note": typed}  # fmt: skip
    log_in(client, logins["writer"])
    ours = {"Origin": "http://testserver"}  # a browser says where a form was posted from
    stale = client.post("/add", data={**form, "csrf_token": "a token of an older login"}, headers=ours)
    assert stale.status_code == 403 and html.escape(typed) in stale.text  # shown, nothing lost
    assert "Not sent: the form came from a page of an earlier login." in stale.text and "<dt>Note</dt>" in stale.text
    action, fields = _hidden_fields(stale.text, "resend")
    assert action == "/add" and ("session_note", typed) in fields
    sent = client.post(action, data=dict(fields))  # "send it again": the fresh token is in the page
    assert sent.status_code == 200 and sent.url.path == "/" and "Added" in sent.text
    form["session_datetime"] = "2024-11-06T10:00:00"
    with TestClient(app) as later:  # the login has ended (logged out in another tab, the cookie gone)
        ended = later.post("/add", data={**form, "csrf_token": "a token of the ended login"}, headers=ours)
        assert ended.status_code == 403 and html.escape(typed) in ended.text
        assert "Not sent: your login had ended." in ended.text
        action, fields = _hidden_fields(ended.text, "resend")
        assert action.startswith("/login?") and 'name="password"' in ended.text
        credentials = {"username": logins["writer"].user, "password": logins["writer"].password}
        logged_in = later.post(action, data=dict(fields) | credentials)
        assert logged_in.status_code == 200 and html.escape(typed) in logged_in.text
        assert logins["writer"].password not in logged_in.text
        action, fields = _hidden_fields(logged_in.text, "resend")
        sent = later.post(action, data=dict(fields))
        assert sent.status_code == 200 and sent.url.path == "/" and "Added" in sent.text
    assert {r["session_note"] for r in (data.session.SessionNote & {"subject": "wb-m2"}).to_dicts()} >= {typed}
    added = [{"subject": "wb-m2", "session_datetime": f"2024-11-0{day} 09:00:00"} for day in (5, 6)]
    (data.session.Session & added).delete()  # the other tests count the sessions of the fixture's subjects


def test_a_method_or_address_no_route_takes_is_named_before_the_csrf_and_content_type_checks(client, logins, data):
    auth = logins["writer"].auth  # a data engineer trying what the API might take
    delete = client.delete("/api/sessions", auth=auth)
    assert delete.status_code == 405 and delete.headers["allow"] == "GET, HEAD, POST"
    assert delete.json() == {"error": "DELETE is not taken at /api/sessions: it takes GET, HEAD, POST"}
    assert client.put("/api/nonsense", auth=auth).json() == {"error": "/api/nonsense is no address of this server"}
    assert client.post("/api/sessions.csv", auth=auth).status_code == 405
    log_in(client, logins["reader"])
    page = client.post("/session", data={})  # no form here: told so, not about a CSRF token
    assert page.status_code == 405 and "POST is not taken at /session: it takes GET, HEAD" in page.text
    assert client.post("/api/sessions", content=b"[]", auth=auth).status_code == 403  # a write still must be JSON
    assert client.post("/add", data={"subject": "wb-m1"}).status_code == 403  # and a form must carry its token


def test_a_subjects_page_tells_its_sessions_apart_by_number_where_they_have_no_start(by_number):
    linking = sys.modules["web_by_number"]
    add_references(linking, ["wi-m3"], [], [])
    try:
        ingest("sessions", [{"subject": "wi-m3", "session_id": n} for n in (1, 2)], pipeline=linking)
        page = by_number.get("/subject", params={"subject": "wi-m3"}).text
        shown = re.findall(r'<li><a href="/session\?[^"]*">([^<]+)</a>([^<]*)</li>', page)
        told = sorted((link, rest.split(" · ")[1]) for link, rest in shown)
        assert told == [("(no start time)", "session 1"), ("(no start time)", "session 2")]
    finally:
        remove_references(linking, ["wi-m3"], [], [])


@pytest.mark.parametrize("path", ["/session", "/edit", "/delete", "/subject"])
def test_a_session_or_subject_named_twice_or_with_an_unknown_parameter_is_refused_naming_it(client, logins, data, path):
    log_in(client, logins["writer"])
    key = [("subject", "wb-m1"), ("session_datetime", "2024-03-12T09:00:00Z")][: 1 if path == "/subject" else 2]
    twice = client.get(path, params=[*key, ("subject", "wb-m2")])  # which one? neither is guessed
    assert twice.status_code == 400 and "<b>subject</b> = <code>wb-m2</code>: given twice" in twice.text
    unknown = client.get(path, params=[*key, ("sesion_id", "2")])
    assert unknown.status_code == 400
    assert "<b>sesion_id</b> = <code>2</code>: unknown parameter: use subject" in unknown.text
    assert client.get(path, params=key).status_code == 200


def test_a_page_that_lists_none_of_the_matches_never_shows_a_backwards_range(client, logins, data):
    log_in(client, logins["reader"])
    page = client.get("/", params={"subject": "wb-m1", "limit": "0"})
    summary = re.sub(r"<[^>]+>", "", re.search(r'<p class="summary">(.*?)</p>', page.text, re.S)[1])
    assert re.match(r"[\d,]+ session\(s\), none on this page\.", summary), summary  # other tests add some


def test_the_add_form_takes_a_note_of_several_lines_as_the_edit_form_does(client, logins, data):
    log_in(client, logins["writer"])
    assert '<textarea name="session_note"' in client.get("/add").text
    form = {
        "csrf_token": csrf(client, "/add"),
        "subject": "wb-m2",
        "session_datetime": "2024-12-01T10:00:00Z",
        "session_note": "line one\r\n  line two",
    }  # a browser sends a textarea's line breaks as CRLF
    added = client.post("/add", data=form)
    key = {"subject": "wb-m2", "session_datetime": "2024-12-01 10:00:00"}
    try:
        assert added.status_code == 200 and "Added" in added.text
        assert (data.session.SessionNote & key).fetch1("session_note") == "line one\n  line two"
    finally:
        (data.session.Session & key).delete()


def test_a_form_posted_from_another_site_is_refused_and_never_offered_to_be_sent_again(client, logins, data):
    log_in(client, logins["writer"])
    form = {"subject": "wb-m2", "session_datetime": "2024-11-07T10:00:00Z", "session_note": "planted"}
    for where in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/page"}, {}):
        refused = client.post("/add", data={**form, "csrf_token": "guessed"}, headers=where)
        assert refused.status_code == 403 and "planted" not in refused.text and 'id="resend"' not in refused.text
