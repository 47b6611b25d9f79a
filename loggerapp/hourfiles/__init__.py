"""The hour file: the study's contract, owned here and nowhere else.

One file per household per UTC hour, one JSON line per poll (README.md, Data layout). The pinger writes it, the
upload archives it, the status page, the alerts, the admin chart and the API read it: all of them through this
package, so that an hour, a file's place, a line and a count mean the same thing everywhere.

- ``layout``: hours, file names, local paths, archive keys, and the scan of LOG_ROOT's hour folders (pure, plus
  directory listings);
- ``lines``: the line format: building a line, parsing one, counting lines and readings, lines expected per hour
  (pure);
- ``content``: a whole file's stored form (gzip or not) and the merge of two versions of it (pure);
- ``reading``: reading files back: a household's polls over a span (local, then the archive), the tail of a
  file, cached counts, newest lines first.

The modules are imported by name (``from loggerapp.hourfiles.layout import ...``); this package imports none of
them itself, so that the models can use ``lines`` without an import cycle through ``reading``.
"""
