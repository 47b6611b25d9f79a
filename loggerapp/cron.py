"""RQ's cron schedule for the whole project: `manage.py rqcron loggerapp.cron` (one scheduler per deployment).

RQ clears its registry and re-imports this module on every scheduler start, so the schedule always comes from
code: restarts never register a job twice nor lose one. Cron strings are UTC.
"""

from loggerapp.ops.cron import register_alerts
from loggerapp.rotation.cron import register_rotation

register_rotation()  # the hourly upload, five past every hour (ROTATION_CRON)
register_alerts()  # silence, pinger and upload alerts, every minute (ALERT_CRON)
