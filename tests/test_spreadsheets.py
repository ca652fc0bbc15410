"""Session logs as labs keep them: Excel workbooks, TSV, CSV with ';', trailing empty columns."""

from __future__ import annotations

import datetime as dt

import openpyxl
import pytest

from element_session.errors import InputError
from element_session.ingest import ingest
from element_session.query import session_table
from element_session.readers import read_records
from tests.helpers import snapshot

SUBJECTS, PEOPLE, PROJECTS = ["xl-m1", "xl-m2"], ["xl-ada"], ["xl-maps"]


@pytest.fixture
def refs(references):
    return references(SUBJECTS, PEOPLE, PROJECTS)  # their sessions go with them


def workbook(path, sheets: dict[str, list[list]]) -> str:
    """Write ``sheets`` (title -> rows of cell values; None leaves a cell empty) as an .xlsx file."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for number, row in enumerate(rows, start=1):
            for column, value in enumerate(row, start=1):
                if value is not None:
                    sheet.cell(row=number, column=column, value=value)
    book.save(path)
    return str(path)


LOG = [
    ["subject", "session_datetime", "session_id", "experimenter", "project", "session_note", None, None],
    ["xl-m1", dt.datetime(2024, 3, 31, 1, 30), 1.0, "xl-ada", "xl-maps", "before the change", None, None],
    [None] * 8,  # an empty row in the middle, as people leave them
    ["xl-m1", dt.datetime(2024, 3, 31, 3, 30), 2, "xl-ada", None, None, None, None],
    ["xl-m2", "2024-04-01T09:00:00+02:00", 3, None, None, None],
]


def test_xlsx_rows_are_numbered_as_excel_shows_them_and_cells_become_text(tmp_path):
    path = workbook(tmp_path / "log.xlsx", {"notes": [["ignored"]], "sessions": LOG})
    records = read_records(path, sheet="sessions")
    assert [r.row for r in records] == [2, 4, 5]
    assert {r.source for r in records} == {f"{path}[sessions]"}
    first = records[0].values
    assert first["session_datetime"] == "2024-03-31T01:30:00"  # no offset: read in --timezone
    assert first["session_id"] == "1"  # a whole number stays an integer, not "1.0"
    assert records[1].values["project"] is None


def test_xlsx_date_cells_are_dates_and_fractions_stay_fractions(tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["subject", "subject_birth_date", "weight"])
    sheet.append(["m1", dt.date(2020, 1, 2), 2.5])
    sheet["B2"].number_format = "yyyy-mm-dd"
    book.save(tmp_path / "s.xlsx")
    (record,) = read_records(tmp_path / "s.xlsx")
    assert record.values == {"subject": "m1", "subject_birth_date": "2020-01-02", "weight": "2.5"}


def test_xlsx_sessions_ingested_in_the_given_zone_once(refs, tmp_path):
    path = workbook(tmp_path / "log.xlsx", {"sessions": LOG})
    report = ingest("sessions", path, pipeline=refs, timezone="Europe/Berlin")
    assert report.rows == 3 and report.new == 3
    frame = session_table(refs.session.Session & [{"subject": s} for s in SUBJECTS], refs.session)
    stored = {(r["subject"], r["session_id"]): r["session_datetime"].replace(tzinfo=None) for _, r in frame.iterrows()}
    # 01:30 in Berlin is before the spring change (+01:00), 03:30 after it (+02:00)
    assert stored == {
        ("xl-m1", 1): dt.datetime(2024, 3, 31, 0, 30),
        ("xl-m1", 2): dt.datetime(2024, 3, 31, 1, 30),
        ("xl-m2", 3): dt.datetime(2024, 4, 1, 7, 0),
    }
    again = ingest("sessions", path, pipeline=refs, timezone="Europe/Berlin")
    assert again.new == 0 and len(again.present) == 3


def test_xlsx_problem_names_file_sheet_row_and_column_and_writes_nothing(refs, tmp_path):
    rows = [LOG[0], LOG[1], ["xl-m9", dt.datetime(2024, 3, 30, 2, 30), 5], ["xl-m2", dt.datetime(2024, 3, 31, 2, 30)]]
    path = workbook(tmp_path / "log.xlsx", {"Sheet 1": rows})
    before = snapshot(refs)
    with pytest.raises(InputError) as err:
        ingest("sessions", path, pipeline=refs, timezone="Europe/Berlin")
    text = str(err.value)
    assert f"{path}[Sheet 1], row 3, column 'subject'" in text
    assert f"{path}[Sheet 1], row 4, column 'session_datetime'" in text and "does not exist" in text  # DST gap
    assert snapshot(refs) == before


def test_xlsx_unknown_sheet_names_the_sheets_there(tmp_path):
    path = workbook(tmp_path / "log.xlsx", {"a": [["subject"]], "b": [["subject"]]})
    with pytest.raises(InputError, match=r"no such sheet: the workbook has 'a', 'b'"):
        read_records(path, sheet="c")


def test_not_a_workbook_is_a_typed_error(tmp_path):
    path = tmp_path / "log.xlsx"
    path.write_text("subject\nm1\n")
    with pytest.raises(InputError, match="not an Excel workbook"):
        read_records(path)


@pytest.mark.parametrize(
    ("name", "text", "delimiter"),
    [
        ("excel.csv", "subject;session_datetime;session_note\r\nm1;2024-01-01T10:00:00Z;a, b\r\n", None),
        ("tabs.tsv", "subject\tsession_datetime\tsession_note\nm1\t2024-01-01T10:00:00Z\ta, b\n", None),
        ("tabs.csv", "subject\tsession_datetime\tsession_note\nm1\t2024-01-01T10:00:00Z\ta, b\n", None),
        ("pipes.csv", "subject|session_datetime|session_note\nm1|2024-01-01T10:00:00Z|a, b\n", "|"),
    ],
)
def test_separator_read_from_the_header_or_given(tmp_path, name, text, delimiter):
    (tmp_path / name).write_text(text, encoding="utf-8")
    (record,) = read_records(tmp_path / name, delimiter=delimiter)
    assert record.values == {"subject": "m1", "session_datetime": "2024-01-01T10:00:00Z", "session_note": "a, b"}


def test_comma_file_with_semicolons_in_cells_keeps_commas(tmp_path):
    (tmp_path / "s.csv").write_text('subject,experimenter\nm1,"a;b"\n', encoding="utf-8")
    (record,) = read_records(tmp_path / "s.csv")
    assert record.values == {"subject": "m1", "experimenter": "a;b"}


def test_trailing_empty_columns_of_spreadsheet_programs_are_ignored(tmp_path):
    (tmp_path / "s.csv").write_text("subject,session_note,,\nm1,hello,,\n,,,\nm2,,,\n", encoding="utf-8")
    records = read_records(tmp_path / "s.csv")
    assert [(r.row, r.values) for r in records] == [
        (2, {"subject": "m1", "session_note": "hello"}),
        (4, {"subject": "m2", "session_note": None}),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("subject,,session_note\nm1,,x\n", r"row 1, column '#2': a column without a name in the header"),
        ("subject,session_note,\nm1,x,surprise\n", r"row 2, column '#3': a value in a column without a name"),
        ("subject,session_note\nm1\n", r"row 2: 1 cells where the header has 2"),
    ],
)
def test_unnamed_columns_with_data_are_errors_that_say_where(tmp_path, text, message):
    (tmp_path / "s.csv").write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_records(tmp_path / "s.csv")


def test_options_that_do_not_apply_are_refused(tmp_path):
    (tmp_path / "s.json").write_text("[]", encoding="utf-8")
    with pytest.raises(InputError, match=r"only \.xlsx workbooks have sheets"):
        read_records(tmp_path / "s.json", sheet="a")
    with pytest.raises(InputError, match="only CSV and TSV files have one"):
        read_records(tmp_path / "s.json", delimiter=";")
    with pytest.raises(InputError, match="applies to files only"):
        read_records([{"subject": "m1"}], delimiter=";")
    with pytest.raises(InputError, match="one character"):
        (tmp_path / "s.csv").write_text("a\n1\n", encoding="utf-8")
        read_records(tmp_path / "s.csv", delimiter=";;")


# -- the command's --sheet and --delimiter (documented in docs/ingest.md) ----------------------------------------


def test_the_command_reads_the_sheet_it_is_given(refs, tmp_path, capsys):
    from element_session import cli

    header = ["subject", "session_datetime", "session_note"]
    path = workbook(
        tmp_path / "log.xlsx",
        {
            "notes": [["note"], ["written by hand, not a table of sessions"]],
            "sessions": [
                header,
                ["xl-m1", "2024-05-01T10:00:00Z", "sheet two"],
                ["xl-m2", "2024-05-02T10:00:00Z", None],
            ],
        },
    )
    assert cli.main(["ingest", "sessions", path], pipeline=refs) == 1  # the first sheet is not sessions
    assert "notes" in capsys.readouterr().err  # the error names the sheet
    assert cli.main(["ingest", "sessions", path, "--sheet", "sessions"], pipeline=refs) == 0
    assert "2 row(s) read, 2 new" in capsys.readouterr().out
    frame = session_table(refs.session.Session & [{"subject": s} for s in SUBJECTS], refs.session)
    assert frame.session_note.tolist()[:1] == ["sheet two"] and len(frame) == 2
    assert cli.main(["ingest", "sessions", path, "--sheet", "elsewhere"], pipeline=refs) == 1
    assert "elsewhere" in capsys.readouterr().err


def test_the_command_reads_the_delimiter_it_is_given(refs, tmp_path, capsys):
    from element_session import cli

    path = tmp_path / "export.tsv"  # named .tsv, yet separated by ';' as some spreadsheet exports are
    path.write_text("subject;session_datetime;session_note\nxl-m1;2024-05-03T10:00:00Z;a, b\n", encoding="utf-8")
    assert cli.main(["ingest", "sessions", str(path)], pipeline=refs) == 1  # read with tabs: one unknown column
    assert "unknown column" in capsys.readouterr().err
    assert cli.main(["ingest", "sessions", str(path), "--delimiter", ";"], pipeline=refs) == 0
    assert "1 row(s) read, 1 new" in capsys.readouterr().out
    frame = session_table(refs.session.Session & {"subject": "xl-m1"}, refs.session)
    assert frame.session_note.tolist() == ["a, b"]
