"""The SLURM tests' pipeline module, as the tasks import it: the tables of ``tests.slurm_tables`` under
``DATABASE_PREFIX``."""

import os

from tests.slurm_tables import make_tables

Item, Made = make_tables(os.environ["DATABASE_PREFIX"])
