"""The tutorial notebook, executed top to bottom against the test server, and its stripped repository copy.

The notebook runs in a Jupyter kernel of this interpreter (nbclient + ipykernel) whose environment
points DataJoint at the test server (``DJ_*``) with a schema prefix of its own, so that its schemas
do not meet those of the other tests; they are dropped at the end. Cells are found by their tags.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "tutorial.ipynb"
TAGS = (
    "connect",
    "activate",
    "diagram",
    "ingest",
    "ingest-again",
    "find",
    "table",
    "plot",
    "populate",
    "inventory",
    "file-types",
    "nwb",
    "cleanup",
)
KERNEL = "element-session-test-python"


def _read():
    import nbformat

    return nbformat.read(NOTEBOOK, as_version=4)


def _cell(notebook, tag: str):
    (cell,) = [c for c in notebook.cells if tag in c.metadata.get("tags", [])]
    return cell


def _text(cell, stream: str = "stdout") -> str:
    """What a cell printed on ``stream``, then the plain-text form of what it displayed."""
    printed = [o["text"] for o in cell.outputs if o["output_type"] == "stream" and o["name"] == stream]
    shown = [
        o["data"].get("text/plain", "") for o in cell.outputs if o["output_type"] in ("execute_result", "display_data")
    ]
    return "".join(printed) + "\n".join(shown)


def _data(cell, mime: str) -> list[str]:
    return [o["data"][mime] for o in cell.outputs if mime in o.get("data", {})]


def test_repository_copy_is_stripped_and_tagged():
    notebook = _read()
    import nbformat

    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c for c in code if c.outputs or c.execution_count is not None] == []
    tags = [tag for c in code for tag in c.metadata.get("tags", [])]
    assert sorted(tags) == sorted(TAGS), "every tag the tests look for marks exactly one cell"
    assert notebook.metadata.kernelspec.name == "python3"


@pytest.fixture(scope="module")
def notebook_prefix(prefix: str) -> Iterator[str]:
    """The notebook's own schema prefix, under the run's prefix; its schemas are dropped afterwards."""
    from element_session.localdb import drop_schemas

    value = prefix + "tutorial_"
    yield value
    drop_schemas(value)


@pytest.fixture(scope="module")
def executed(subprocess_env: dict[str, str], notebook_prefix: str, connection, tmp_path_factory):
    """The notebook after running every cell in a kernel connected to the test server."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    # A kernel spec of this very interpreter, so that a python3 kernel spec installed elsewhere on
    # the machine cannot run the notebook with another Python.
    specs = tmp_path_factory.mktemp("kernels")
    (specs / KERNEL).mkdir()
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (specs / KERNEL / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"})
    )
    manager = KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)]))

    notebook = _read()
    env = {
        **subprocess_env,
        "DATABASE_PREFIX": notebook_prefix,
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # Jupyter's default, whatever the caller's
    }
    env.pop("SESSION_ROOT_DIRS", None)  # the notebook sets its own
    # execute() raises CellExecutionError, naming the cell and its traceback, if a cell fails; cleanup_kc
    # shuts the kernel down at the end although this test made its manager.
    client = NotebookClient(notebook, km=manager, timeout=300, resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute(env=env, cleanup_kc=True)
    return notebook


def test_connects_to_the_server_of_the_environment(executed, server):
    assert f"Database: {server}" in _text(_cell(executed, "connect"))
    assert "Schemas: test_" in _text(_cell(executed, "activate"))


def test_diagram_is_a_picture_of_the_pipeline(executed):
    cell = _cell(executed, "diagram")
    pictures = _data(cell, "image/svg+xml")
    # DataJoint draws with Graphviz's dot program; without it, IPython shows the error as text instead
    assert len(pictures) == 1, f"no SVG (is Graphviz's dot installed?): {_text(cell, 'stderr')}{_text(cell)}"
    (svg,) = pictures
    assert svg.lstrip().startswith(("<?xml", "<svg"))
    labels = ("Subject", "session.Session", "session.SessionDirectory", "inventory.SessionInventory")
    for label in (*labels, "inventory.FileTypeSummary"):
        assert f">pipeline.{label}</text>" in svg, label
    for schema in ("lab", "subject", "session", "inventory"):  # the groups, named by schema or module
        assert re.search(rf">\w*{schema}\w*</text>", svg), schema  # e.g. session_with_datetime


def test_ingests_the_example_data_set_once(executed):
    text = _text(_cell(executed, "ingest"))
    assert "subjects: 4 rows read, 4 new" in text
    assert "sessions: 12 rows read, 12 new" in text
    again = _text(_cell(executed, "ingest-again"))
    assert "again: 12 rows read, 12 already present, 0 new" in again
    assert "nothing was written" in again
    assert "column 'subject': unknown subject" in again
    assert "'M01'" in again


def test_finder_and_table_of_sessions(executed):
    find = _cell(executed, "find")
    assert "3 sessions of project vis-discrim in March 2024" in _text(find)
    assert "(Total: 3)" in _text(find)
    table = _cell(executed, "table")
    assert "12 sessions of 4 subjects" in _text(table)
    (html,) = _data(table, "text/html")
    assert "2024-03-31T10:00:00+02:00" in html  # the local time (ISO text) on the day summer time began


def test_plot_of_sessions_over_time_is_a_figure(executed):
    (png,) = _data(_cell(executed, "plot"), "image/png")
    image = base64.b64decode(png)
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")
    assert width > 300 and height > 100


def test_populate_fills_the_downstream_tables(executed, notebook_prefix, connection):
    import datajoint as dj

    assert "populated 24 key(s), 0 error(s)" in _text(_cell(executed, "populate"))
    assert "12 sessions inventoried" in _text(_cell(executed, "inventory"))
    file_types = _text(_cell(executed, "file-types"))
    assert all(kind in file_types for kind in ("csv", "json", "txt"))
    # and in the database itself, under the notebook's prefix
    name = connection.adapter.make_full_table_name(notebook_prefix + "inventory", "_session_inventory")
    assert len(dj.FreeTable(connection, name)) == 12


def test_nwb_export_is_read_back(executed):
    text = _text(_cell(executed, "nwb"))
    assert "session_start_time: 2024-02-05T09:30:00+01:00" in text
    assert "subject: M001 | Mus musculus | F" in text
    assert "experimenter: Anh Nguyen" in text
    assert "keywords: vis-discrim" in text
    (html,) = _data(_cell(executed, "nwb"), "text/html")
    assert "habituation" in html and "rig1" in html
