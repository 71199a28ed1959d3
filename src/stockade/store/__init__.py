"""The store: baselines, events, alerts and small state (positions), behind one interface."""

from stockade.store.base import BaselineVersion, OutboxItem, Store
from stockade.store.sqlite import SqliteStore

__all__ = ["BaselineVersion", "OutboxItem", "SqliteStore", "Store"]
