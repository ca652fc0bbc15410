"""The upgrade of schemas made by the published element or by earlier releases, and its diagnosis.

- :mod:`.migrate`: recognise an old layout, plan the steps and apply them (``element-session migrate``);
- :mod:`.doctor`: read-only findings about a database's session schemas (``element-session doctor``);
- :mod:`.charsets`: character-set and collation conversion of tables that hold session keys;
- :mod:`.steps`: one planned step (:class:`.steps.Change`) and how a statement is run.
"""
