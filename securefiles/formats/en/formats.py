"""English date formats with the zone shown ("30 Nov 2026, 14:05 CET").

`T` is the abbreviation of the active zone (securefiles.middleware.BrowserTimezoneMiddleware),
so a time never appears without saying which zone it is in.
"""

DATETIME_FORMAT = "j M Y, H:i T"
SHORT_DATETIME_FORMAT = "j M Y, H:i T"
TIME_FORMAT = "H:i T"
DATE_FORMAT = "j M Y"
SHORT_DATE_FORMAT = "j M Y"
