"""The SLURM front end: populate as a job array of identical workers sharing DataJoint's jobs tables.

- :mod:`.script`: the batch script (from the template ``populate.sbatch``) and what it exports;
- :mod:`.secrets`: where the tasks will read the database password from (never from SLURM);
- :mod:`.submit`: ``sbatch --parsable``;
- :mod:`.follow`: the states of an array's tasks (``scontrol show job``) and ``--wait``.

``element-session slurm populate`` (in :mod:`element_session.cli`) puts them together; see
``docs/cluster.md``. No Python binding of SLURM is needed: only its commands.
"""
