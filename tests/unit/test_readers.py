"""The readers of ingest's files, without a database: what a file that cannot be read is told."""

from __future__ import annotations

import pytest

from element_session.errors import InputError
from element_session.ingest.readers import read_records


@pytest.mark.parametrize(
    ("encoding", "where"),
    [("latin-1", "byte 0xE9 at line 3, column 7"), ("utf-16", "UTF-16 (its byte order mark) at line 1, column 1")],
)
def test_a_file_that_is_not_utf8_is_refused_naming_where_and_how_to_save_it(tmp_path, encoding, where):
    """Excel's "CSV" (Windows-1252) and "Unicode text" (UTF-16) are the usual files that are not UTF-8."""
    path = tmp_path / "s.csv"
    path.write_text("subject,session_note\nm1,fine\nm2,caf\u00e9 noir\n", encoding=encoding)
    with pytest.raises(InputError) as caught:
        read_records(path)
    text = str(caught.value)
    assert f"{path}: not UTF-8 text: {where}; save the file as UTF-8 (Excel: 'CSV UTF-8'" in text, text


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('[{"subject": "m1", "experimenter": {"a": 1}}]', "column 'experimenter': a value must be text or a list"),
        ('[{"subject": "m1", "project": ["p", ["q"]]}]', "row 1, column 'project': a value must be text or a list"),
        ('[{"subject": "m1", "session_note": NaN}]', "NaN is not JSON: write null (or leave the key out)"),
    ],
)
def test_json_that_is_no_table_is_refused_not_read_as_text(tmp_path, text, said):
    """An object inside a row was read as its Python repr ("{'a': 1}"); NaN, which JSON lacks, as an empty cell."""
    path = tmp_path / "s.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_records(path)
    assert said in str(caught.value) and "{'a'" not in str(caught.value), str(caught.value)
