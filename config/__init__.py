"""Settings from the environment and operator-editable data files (replies, FAQ, menus)."""
from config.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
