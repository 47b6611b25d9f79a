"""The hourly upload of finished hour files to the permanent archive (see job.py for the procedure).

discover.py finds the files, ledger.py records and claims them, archive.py stores and verifies them (S3 or a
local folder), lines.py counts and merges their lines, job.py runs it all, cron.py schedules it with RQ.
"""
