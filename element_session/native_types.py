"""MySQL-native types in table definitions: which a backend cannot hold, and their DataJoint 2.x spelling.

The published downstream elements still declare attributes in the spelling of DataJoint 0.14
(``longblob``, ``int``, ``smallint``, ``tinyint``, ``double``, ...). DataJoint 2.3.5 passes such a
*native* type to the server as written, with a log message on MySQL/MariaDB, and on PostgreSQL the
server refuses the table with a raw driver error (``type "longblob" does not exist``) after the
schema and the tables before it were created. :func:`native_attributes` reads a definition with
DataJoint's own parser and names each native type, whether the backend holds it (as DataJoint
2.3.5 declares it there, tried on the test suite's MariaDB 10.11 and PostgreSQL) and the 2.x spelling
to use. On MySQL/MariaDB every native type is held; ``boolean`` is known to neither (use ``bool``), nor are
the stored and attached values of 0.14 (``blob@store``, ``attach@store``, ``filepath@store``, ``attach``: write
the codec, ``<blob@store>``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import datajoint as dj
import pyparsing as pp
from datajoint.declare import NATIVE_TYPES, attribute_parser, match_type

#: The DataJoint 2.x spelling of MySQL-native types, by pattern (matched in order, whole type, any case).
SPELLINGS: tuple[tuple[str, str], ...] = (
    (r"(tiny|small|medium|long)?blob", "<blob> (a serialized object; bytes for raw binary)"),
    (r"tinyint(\(\d+\))? unsigned", "int16 (or uint8 where DataJoint has it)"),
    (r"tinyint(\(\d+\))?", "int8 (bool for a flag)"),
    (r"smallint(\(\d+\))? unsigned", "int32"),
    (r"smallint(\(\d+\))?", "int16"),
    (r"mediumint(\(\d+\))?( unsigned)?", "int32"),
    (r"(int|integer)(\(\d+\))? unsigned", "int64"),
    (r"(int|integer)(\(\d+\))?", "int32"),
    (r"bigint(\(\d+\))?( unsigned)?", "int64"),
    (r"(double|real)(\(.+\))?( unsigned)?", "float64"),
    (r"float(\(.+\))?( unsigned)?", "float32"),
    (r"(decimal|numeric|dec|fixed)(\(.+\))?.*", "decimal(M,D)"),
    (r"(tiny|medium|long)?text", "varchar(N) (text where the server holds it)"),
    (r"timestamp(\(\d\))?", "datetime"),
    (r"year", "int16"),
    (r"(var)?char\s*\(.+\).*", "char(N) or varchar(N)"),
    (r"time(\(\d\))?", "time"),
    (r"serial", "int64 with auto_increment"),
)

#: Native types PostgreSQL holds as DataJoint 2.3.5 declares them (tried; it refuses the others: ``tinyint``,
#: ``mediumint``, ``double``, ``year``, the blob and sized text types, a display width such as ``int(11)``,
#: ``unsigned``).
POSTGRESQL_HOLDS = re.compile(
    r"smallint|int|integer|bigint|real|float|text|serial|numeric\s*\(.+\)|time(stamp)?(\(\d\))?", re.I
)
_INDEX = re.compile(r"(unique\s+)?index\s*\(", re.I)

#: Types DataJoint 2.3.5 does not know at all on either backend, and their 2.x spelling.
UNKNOWN = {"boolean": "bool"}
#: DataJoint 0.14's spelling of values kept in a store or attached (``blob@raw``, ``attach``), which 2.3.5 knows only
#: as codecs on either backend (``<blob@raw>``, ``<attach>``): "Unsupported attribute type" once the schema exists.
OLD_CODEC = re.compile(r"(blob|attach|filepath)@[\w-]+|attach", re.I)


@dataclass(frozen=True)
class NativeAttribute:
    """An attribute of a definition declared with a MySQL-native type."""

    table: str  #: the table's class name
    attribute: str
    type: str  #: as written in the definition
    spelling: str  #: the DataJoint 2.x type to write instead
    held: bool  #: whether the backend holds it as written (with DataJoint's log message)

    def __str__(self) -> str:
        return f"{self.table}.{self.attribute}: {self.type} -> {self.spelling}"


def spelling(native: str) -> str:
    """The DataJoint 2.x spelling of the native type ``native`` (e.g. ``longblob`` -> ``<blob>``)."""
    text = " ".join(native.lower().split())
    return next((to for pattern, to in SPELLINGS if re.fullmatch(pattern, text)), "a DataJoint core type")


def native_attributes(table: type[dj.Table], backend: str) -> list[NativeAttribute]:
    """The attributes of ``table``'s definition (its part tables' too) declared with MySQL-native types.

    ``backend`` (``mysql`` or ``postgresql``) decides :attr:`NativeAttribute.held`. Foreign keys,
    index lines and core types (``int32``, ``<blob>``, ``varchar(N)``, ...) are skipped; a line that
    DataJoint's parser cannot read is left for DataJoint's declaration to report.
    """
    found: list[NativeAttribute] = []
    for name, definition in _definitions(table):
        for line in definition.splitlines():
            line = line.strip()
            parsed = _attribute(line)
            if parsed is None:
                continue
            kind = parsed["type"].strip()
            if kind.lower() in UNKNOWN or OLD_CODEC.fullmatch(kind):
                to = UNKNOWN.get(kind.lower()) or f"<{kind}>"
                found.append(NativeAttribute(name, parsed["name"], kind, to, False))
                continue
            try:
                category = match_type(kind)
            except dj.DataJointError:
                continue
            if category in NATIVE_TYPES:
                held = backend != "postgresql" or bool(POSTGRESQL_HOLDS.fullmatch(kind))
                found.append(NativeAttribute(name, parsed["name"], kind, spelling(kind), held))
    return found


def _attribute(line: str) -> pp.ParseResults | None:
    """The attribute of a definition's line, read by DataJoint's parser; None for another line."""
    if not line or line.startswith(("#", "---", "___", "->")) or _INDEX.match(line):
        return None
    try:
        return attribute_parser.parse_string(line + "#", parse_all=True)
    except pp.ParseBaseException:  # not an attribute line: DataJoint's declaration says why
        return None


def _definitions(table: type[dj.Table]) -> Iterable[tuple[str, str]]:
    yield table.__name__, getattr(table, "definition", "") or ""
    for part in vars(table).values():
        if isinstance(part, type) and issubclass(part, dj.Part):
            yield f"{table.__name__}.{part.__name__}", getattr(part, "definition", "") or ""
