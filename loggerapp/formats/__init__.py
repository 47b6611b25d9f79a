"""Date and time formats (FORMAT_MODULE_PATH): UTC, 24-hour, ISO-like dates, in the admin and every template."""
