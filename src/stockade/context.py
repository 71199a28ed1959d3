"""What every command and part needs: the configuration, the state folder, the host name."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from stockade.config import Config, LoadedConfig
from stockade.store import SqliteStore, Store

DEFAULT_STATE_DIR = Path("/var/lib/stockade")


@dataclass(frozen=True)
class Context:
    loaded: LoadedConfig
    state_dir: Path

    @property
    def config(self) -> Config:
        return self.loaded.config

    @property
    def host(self) -> str:
        return self.config.stockade.host or socket.gethostname()

    @property
    def store_path(self) -> Path:
        p = self.config.store.path
        return Path(p) if p else self.state_dir / "stockade.db"

    def open_store(self, *, readonly: bool = False) -> Store:
        """A new store connection; each thread opens its own."""
        return SqliteStore(self.store_path, readonly=readonly)
