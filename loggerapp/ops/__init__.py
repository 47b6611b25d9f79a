"""Operations: /healthz, /metrics, the status page, charts, alerts and `manage.py doctor`.

Each module has one job; views and management commands are thin shells over them.
"""
