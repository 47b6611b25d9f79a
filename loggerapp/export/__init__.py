"""Getting the data back: a household's readings over a span, as CSV, JSON lines or Parquet (issue 14 part 2).

ranges.py (a UTC span, checked), columns.py (the columns and one row per line), formats.py (the three writers,
each turning rows into bytes as they come), run.py (households chosen, hours read through hourfiles.span, bytes
streamed, a summary), progress.py (the terminal's progress line). ``manage.py export_readings``, the API's
``/api/households/<cloud_id>/readings`` and the admin's *download readings* are thin callers of run.py, so the
three give the same bytes for the same rows.
"""
