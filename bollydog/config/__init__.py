"""Configuration loading: YAML/JSON files with ``!module`` references and ``${ENV}`` values."""

from bollydog.config.loader import ModuleRef, load_config, loads_config

__all__ = ["ModuleRef", "load_config", "loads_config"]
