"""Scenario schema, YAML loading and ``--set`` overrides."""
