"""The OpenAPI document is valid, is served, and the response check the other API tests rely on can fail."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec

from loggerapp.api.schema import SCHEMA_PATH, openapi_document
from tests.fixtures.api import FORMATS, REGISTRY, SPEC_URI, check_response, schema_pointer


def test_the_document_is_valid_openapi_3_1():
    spec = json.loads(SCHEMA_PATH.read_text())
    validate_spec(spec)
    assert spec["openapi"].startswith("3.1")


def test_every_response_reference_resolves():
    spec = openapi_document()
    for template, item in spec["paths"].items():
        for status in item["get"]["responses"]:
            pointer = schema_pointer(template, int(status))
            Draft202012Validator({"$ref": SPEC_URI + pointer}, registry=REGISTRY).is_valid({})


def test_the_schema_check_catches_a_wrong_body():
    """The validation the other tests rely on can fail: an extra field or a missing one is reported."""
    validator = Draft202012Validator(
        {"$ref": SPEC_URI + "#/components/schemas/Error"}, registry=REGISTRY, format_checker=FORMATS
    )
    assert validator.is_valid({"error": {"kind": "not_found", "message": "x"}})
    assert not validator.is_valid({"error": {"kind": "not_found", "message": "x", "password": "p"}})
    assert not validator.is_valid({"error": {"kind": "nonsense", "message": "x"}})
    household = Draft202012Validator(
        {"$ref": SPEC_URI + "#/components/schemas/Household"}, registry=REGISTRY, format_checker=FORMATS
    )
    assert not household.is_valid({"cloud_id": "002506"})


@pytest.mark.parametrize("url", ["/api/schema", "/api/schema/", "/api/v1/schema"])
def test_the_schema_needs_authentication_like_every_endpoint(client, url):
    response = client.get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    check_response(response, "/schema")


@pytest.mark.parametrize("url", ["/api/schema", "/api/schema/", "/api/v1/schema"])
def test_the_schema_is_served_to_token_holders(api_client, url):
    response = api_client.get(url)
    assert response.status_code == 200
    body = check_response(response, "/schema")
    assert body == openapi_document()


def test_the_schema_lists_both_bases():
    assert [server["url"] for server in openapi_document()["servers"]] == ["/api/v1", "/api"]


def test_settings_defaults_match_the_documented_page_size():
    parameters = {p["name"]: p for p in openapi_document()["paths"]["/households/"]["get"]["parameters"]}
    assert parameters["page_size"]["schema"]["default"] == settings.API_PAGE_SIZE
    assert parameters["page_size"]["schema"]["maximum"] == settings.API_MAX_PAGE_SIZE
