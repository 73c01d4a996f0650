"""Configuration loading: YAML/JSON files with ``!module`` references and ``${ENV}`` values."""

from bollydog.config.loader import ModuleRef, Section, load_config, loads_config, location

__all__ = ["ModuleRef", "Section", "load_config", "loads_config", "location"]
