"""The ``stockade`` command line: one sub-command per part."""
