"""One module per platform, behind the value types of ``channels.base``."""
