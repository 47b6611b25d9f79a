"""The REST API: bearer-token (or staff-session) authenticated JSON over plain Django views.

auth.py (who is asking), throttle.py (how often live reads may reach a device), latest.py (the last logged
reading, from the hour files), readings.py (a span of logged readings, streamed: the export's bytes),
serializers.py (to_dict functions), responses.py (JSON bodies and headers, the
typed ApiError, fixed error messages), schema.py + openapi.json (the contract), views.py (thin), urls.py. The
live read itself is loggerapp/live.py, shared with the admin and `doctor`.
"""
