"""The OpenAPI 3.1 document: hand-written in openapi.json beside this module, loaded once, served at /api/schema.

Hand-written rather than generated because the views are plain Django; tests validate the document itself
(openapi-spec-validator) and every response the tests receive against it (jsonschema).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("openapi.json")


@cache
def openapi_document() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
