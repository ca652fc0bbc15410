"""The reservation benchmark's pipeline: ``Key`` (an integer) and ``Made``, whose make inserts the key and nothing else.

Activated under ``DATABASE_PREFIX`` (schema ``<prefix>trivial``) on import, as a pipeline module
is; SLURM tasks import it by name (``--pipeline benchmarks.trivial_pipeline``).
"""

import os
from typing import Any

import datajoint as dj

schema = dj.Schema(os.environ["DATABASE_PREFIX"] + "trivial")


@schema
class Key(dj.Manual):
    definition = """
    key_id: int32
    """


@schema
class Made(dj.Computed):
    definition = """
    -> Key
    """

    def make(self, key: dict[str, Any]) -> None:
        """Insert the key: the least work a make can do, so that what is timed is the reservation."""
        self.insert1(key)
