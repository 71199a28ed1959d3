"""Configuration: one TOML file, validated on load, with errors that name file, key and line."""

from stockade.config.load import DEFAULT_CONFIG_PATH, LoadedConfig, load_config, quickstart_text
from stockade.config.schema import Config

__all__ = ["DEFAULT_CONFIG_PATH", "Config", "LoadedConfig", "load_config", "quickstart_text"]
