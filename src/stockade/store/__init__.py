"""The store: baselines, events, alerts and small state (positions), behind one interface."""

from stockade.store.base import BaselineVersion, Store
from stockade.store.sqlite import SqliteStore

__all__ = ["BaselineVersion", "SqliteStore", "Store"]
