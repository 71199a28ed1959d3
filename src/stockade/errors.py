"""The exceptions stockade raises on purpose.

    StockadeError            a problem the user can fix; printed as one line, exit status 2
     ├── ConfigError          the configuration file is malformed or holds a bad value
     ├── UsageError           a command-line argument is wrong
     ├── StoreError           the store cannot be opened or is damaged
     └── IntegrityError       a signed baseline failed verification (also raises a critical alert)

Every message says what is wrong, where, and how to fix it, in one line.
"""


class StockadeError(Exception):
    """A problem the user can fix; the CLI prints it as one line and exits with status 2."""


class ConfigError(StockadeError):
    """The configuration is malformed or holds a bad value."""


class UsageError(StockadeError):
    """A command-line argument is wrong."""


class StoreError(StockadeError):
    """The store cannot be opened, migrated or written."""


class IntegrityError(StockadeError):
    """A signed baseline failed verification: someone may have tampered with it."""
