"""Date and time formats that override the locale ones (settings.FORMAT_MODULE_PATH)."""
