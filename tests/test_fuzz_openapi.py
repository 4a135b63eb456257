"""Schemathesis against the service's own /openapi.json, on a real port with the real models behind it.

Every operation the document describes gets schema-valid requests (positive), schema-violating
ones (negative, for operations that take any input) and, for the photo endpoints, valid bodies
carrying real LFW photos so the full pipeline answers too. Every response must pass schemathesis'
checks: no 5xx, a documented status code, content type and headers, a body matching the documented
schema, invalid input refused with a 4xx, valid input accepted. A photo's bytes are beyond what a
schema can say (random bytes are schema-valid yet no photo), so photo endpoints skip only
``positive_data_acceptance``.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from collections import Counter

import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckFunction, GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from faceauth_auth.openapi import SPEC
from tests.auth_helpers import ALICE, BOB, STRANGER, TWO_FACES, Application, Photo
from tests.fuzz_helpers import FUZZ

pytest_plugins = ["tests.auth_fixtures", "tests.fuzz_fixtures"]

MAX_EXAMPLES = {"positive": 30, "negative": 30, "photos": 10}
PHOTOS = [(ALICE, 2), (ALICE, 3), (BOB, 1), STRANGER, TWO_FACES]
USER_IDS = ["alice", "bob", "nobody"]


def _modes(operation: dict[str, object]) -> list[str]:
    """Negative cases need an input to break; photo cases need a photo upload."""
    if "requestBody" in operation:
        return ["positive", "negative", "photos"]
    return ["positive", "negative"] if "parameters" in operation else ["positive"]


OPERATIONS = [(method.upper(), path, mode) for path, item in SPEC["paths"].items()
              for method, operation in item.items() for mode in _modes(operation)]


@pytest.fixture(scope="module")
def api_schema(served: str) -> OpenApiSchema:
    schema = schemathesis.openapi.from_url(f"{served}/openapi.json")
    assert isinstance(schema, OpenApiSchema)
    return schema


@pytest.fixture(scope="module")
def encoded_photos(photo: Photo) -> list[str]:
    return [base64.b64encode(photo(*which)).decode() for which in PHOTOS]


def _photo_bodies(encoded: list[str], with_user: bool) -> st.SearchStrategy[dict[str, str]]:
    fields = {"image": st.sampled_from(encoded)}
    return st.fixed_dictionaries({**fields, "user_id": st.sampled_from(USER_IDS)} if with_user else fields)


@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS)
def test_every_answer_matches_the_openapi_document(api_schema: OpenApiSchema, served: str, application: Application,
                                                   encoded_photos: list[str], fuzz_cases: Counter[str],
                                                   method: str, path: str, mode: str) -> None:
    operation = api_schema[path][method]
    upload = SPEC["paths"][path][method.lower()].get("requestBody")
    if mode == "photos":
        with_user = "user_id" in upload["content"]["application/json"]["schema"]["required"]
        strategy = _photo_bodies(encoded_photos, with_user).flatmap(
            lambda body: operation.as_strategy(body=body, media_type="application/json"))
    else:
        strategy = operation.as_strategy(generation_mode=GenerationMode(mode))
    excluded: list[CheckFunction] = [positive_data_acceptance] if upload else []

    @settings(FUZZ, max_examples=MAX_EXAMPLES[mode])
    @given(case=strategy)
    def check(case: Case) -> None:
        fuzz_cases[mode] += 1
        case.call_and_validate(base_url=served, headers=application.headers, excluded_checks=excluded)

    check()


@pytest.mark.parametrize("path", list(SPEC["paths"]))
def test_an_undocumented_method_gets_405_naming_the_allowed_ones(served: str, application: Application,
                                                                 path: str) -> None:
    """What schemathesis' unsupported_method check asks (RFC 9110: a 405 must carry Allow)."""
    url = served + path.format(user_id="alice", face_id=uuid.uuid4())
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(urllib.request.Request(url, method="PUT", headers=application.headers), timeout=30)
    allowed = {method.strip() for method in answer.value.headers.get("Allow", "").split(",")}
    assert answer.value.code == 405 and {method.upper() for method in SPEC["paths"][path]} <= allowed
    assert json.loads(answer.value.read())["error"]["code"] == "method_not_allowed"
