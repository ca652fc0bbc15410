"""The tables of the SLURM tests' small pipeline, made for a schema prefix (no database touched at import).

``Item.action`` decides what ``Made.make`` does with the key: ``ok``; ``fail`` (raises);
``slow:SECONDS`` (sleeps, then makes it); ``memory:MB`` (holds that much memory, then makes it).
Every make that finishes writes a file ``made/<item>-<pid>-<ns>`` in the working directory (the
tasks' ``--chdir``): one file per key means each key was made exactly once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import datajoint as dj

MADE_DIR = "made"


def make_tables(prefix: str) -> tuple[type[dj.Manual], type[dj.Computed]]:
    """``Item`` and ``Made`` activated in the schema ``<prefix>slurmtest``."""
    context: dict[str, Any] = {}
    schema = dj.Schema(prefix + "slurmtest", context=context)

    @schema
    class Item(dj.Manual):
        definition = """
        item: int
        ---
        action='ok': varchar(32)  # ok | fail | slow:SECONDS | memory:MB
        """

    context["Item"] = Item

    @schema
    class Made(dj.Computed):
        definition = """
        -> Item
        ---
        pid: int
        """

        def make(self, key: dict[str, Any]) -> None:
            action = (Item & key).fetch1("action")
            kind, _, amount = action.partition(":")
            if kind == "fail":
                raise RuntimeError(f"item {key['item']} fails on purpose")
            if kind == "slow":
                time.sleep(float(amount))
            if kind == "memory":
                held = bytearray(int(amount) * 2**20)
                for i in range(0, len(held), 4096):
                    held[i] = 1
                time.sleep(2)
            made = Path.cwd() / MADE_DIR
            made.mkdir(exist_ok=True)
            (made / f"{key['item']}-{os.getpid()}-{time.time_ns()}").touch()
            self.insert1({**key, "pid": os.getpid()})

    return Item, Made
