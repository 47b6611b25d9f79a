"""The hour file: the study's contract, owned here and nowhere else.

One file per household per UTC hour, one JSON line per poll (README.md, Data layout). The pinger writes it, the
upload archives it, the status page, the alerts, the admin chart, the API and the export read it: all of them
through this package, so that an hour, a file's place, a line and a count mean the same thing everywhere.

- ``layout``: hours, file names, local paths, archive keys, kinds of hour file, and the scan of LOG_ROOT's hour
  folders (pure, plus directory listings);
- ``lines``: the line format: building a line, parsing one, counting lines and readings, lines expected per hour
  (pure);
- ``content``: a whole file's stored form (gzip or not) and the merge of two versions of it (pure);
- ``reading``: reading files back: a household's polls over a span, the tail of a file, cached counts, newest
  lines first;
- ``archived``: the archive read back: a household's hour files over a span, listed and fetched (read-only);
- ``span``: a household's hours over a span, every line once, in time order, from the local files and the
  archive together, fetched on one bounded pool (what the export and the admin's chart read).

The modules are imported by name (``from loggerapp.hourfiles.layout import ...``); this package imports none of
them itself, so that the models can use ``lines`` without an import cycle through ``reading``.
"""
