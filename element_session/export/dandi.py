"""What the DANDI archive would refuse in an NWB file, said at export.

DANDI's validator treats a subject without a species, a sex, or an age or date of birth as a
CRITICAL problem (nwbinspector PR #648, the ``dandi`` configuration): the archive refuses such a
file. :func:`subject_problems` names each missing field and how to supply it;
:func:`check_subject` warns (:class:`~element_session.errors.DandiWarning`) or, with
``strict=True`` (``export-nwb --strict``, for pipelines that publish to DANDI), raises before
anything is written. When nwbinspector is installed, :func:`inspect_file` runs its CRITICAL checks
with DANDI's configuration on the written file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from typing import Any

from ..errors import DandiWarning, NwbExportError

#: Each field DANDI requires of the subject, and how to supply it in this project.
REQUIRED_SUBJECT_FIELDS = {
    "species": "add a `species` column to the Subject table (e.g. 'Mus musculus'), or give "
    "--subject-field species='Mus musculus' (subject_kwargs={'species': 'Mus musculus'} in Python)",
    "sex": "add a `sex` column to the Subject table (M, F, U or O), or give --subject-field sex=F "
    "(subject_kwargs={'sex': 'F'})",
    "age or date_of_birth": "add a `subject_birth_date` column to the Subject table, or an `age` column, or give "
    "--subject-field age=P90D, an ISO 8601 duration (subject_kwargs={'age': 'P90D'})",
}


#: nwbinspector's check that finds each field of :data:`REQUIRED_SUBJECT_FIELDS` missing (said once, not twice).
SAME_CHECK = {
    "species": "check_subject_species_exists",
    "sex": "check_subject_sex",
    "age or date_of_birth": "check_subject_age",
}


def subject_problems(nwbfile: Any) -> dict[str, str]:
    """The fields DANDI requires that ``nwbfile``'s subject lacks: field -> how to supply it (empty if none)."""
    subject = getattr(nwbfile, "subject", None)
    if subject is None:
        return dict(REQUIRED_SUBJECT_FIELDS)
    missing = {}
    for field, how in REQUIRED_SUBJECT_FIELDS.items():
        names = field.split(" or ")
        if not any(getattr(subject, name, None) not in (None, "") for name in names):
            missing[field] = how
    return missing


def check_subject(nwbfile: Any, *, strict: bool = False) -> None:
    """Warn (or, ``strict``, raise) naming each field of the subject DANDI requires and ``nwbfile`` lacks.

    Warns
    -----
    DandiWarning
        One, listing the missing fields and how to supply each (not ``strict``).

    Raises
    ------
    NwbExportError
        The same message, with ``strict``; nothing is written.
    """
    missing = subject_problems(nwbfile)
    if not missing:
        return
    message = "the NWB file's subject lacks what the DANDI archive requires (it would refuse the file): " + "; ".join(
        f"{field}: {how}" for field, how in missing.items()
    )
    if strict:
        raise NwbExportError(message + " (refused by --strict / strict=True; nothing was written)")
    warnings.warn(message, DandiWarning, stacklevel=3)


def inspect_file(path: str | os.PathLike, *, said: Iterable[str] = ()) -> list[str] | None:
    """nwbinspector's CRITICAL findings on the file ``path`` with DANDI's configuration; None if not installed.

    Each finding as text: ``check_name: message (location)``. ``said`` are the fields that
    :func:`subject_problems` found missing: the checks that find the same (:data:`SAME_CHECK`) are left
    out, and only they (a sex or age in a form DANDI refuses is still said).
    """
    try:
        import nwbinspector
    except ImportError:
        return None
    config = nwbinspector.load_config("dandi")
    found = nwbinspector.inspect_nwbfile(nwbfile_path=str(path), config=config, importance_threshold="CRITICAL")
    same = {SAME_CHECK[field] for field in said}
    return [
        f"{m.check_function_name}: {m.message} ({m.location or '/'})"
        for m in found
        if m is not None and m.check_function_name not in same
    ]
