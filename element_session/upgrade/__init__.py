"""The upgrade of schemas made by the published element or by earlier releases, and its diagnosis.

- :mod:`.migrate`: recognise an old layout, plan the steps and apply them (``element-session migrate``);
- :mod:`.doctor`: read-only findings about a database's session schemas (``element-session doctor``);
- :mod:`.charsets`: character-set and collation conversion of tables that hold session keys;
- :mod:`.lineage`: DataJoint 2.x's ``~lineage`` of a legacy schema, recorded and wanted;
- :mod:`.catalog`: the one reader of the database catalog (tables, columns, keys, the schema graph);
- :mod:`.steps`: one planned step (:class:`.steps.Change`), how a statement is run, and how a step is applied.
"""
