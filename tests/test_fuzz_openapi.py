"""Schemathesis against the service's own /openapi.json, on a real port with the real models behind it.

Every operation the document describes gets schemathesis' coverage cases (boundary values, each
part missing or of the wrong type, methods the document does not list), schema-valid requests
(positive), schema-violating ones (negative, for operations that take any input) and, for the
photo endpoints, valid bodies carrying real LFW photos so the full pipeline answers too. Every
response must pass schemathesis' checks: no 5xx, a documented status code, content type and
headers, a body matching the documented schema, invalid input refused with a 4xx, a 405 naming
the allowed methods, valid input accepted. A photo's bytes are beyond what a schema can say
(random bytes are schema-valid yet no photo), so photo endpoints skip only the last check.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable

import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, CheckFunction, GenerationMode
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from faceauth_auth.openapi import SPEC
from tests.auth_helpers import ALICE, BOB, STRANGER, TWO_FACES, Application, Photo
from tests.fuzz_helpers import FUZZ

pytest_plugins = ["tests.auth_fixtures", "tests.fuzz_fixtures"]

MAX_EXAMPLES = {"positive": 30, "negative": 30, "photos": 10}  # coverage cases are a fixed list
PHOTOS = [(ALICE, 2), (ALICE, 3), (BOB, 1), STRANGER, TWO_FACES]
USER_IDS = ["alice", "bob", "nobody"]


def _modes(operation: dict[str, object]) -> list[str]:
    """Negative cases need an input to break; photo cases need a photo upload."""
    if "requestBody" in operation:
        return ["coverage", "positive", "negative", "photos"]
    return ["coverage", "positive", "negative"] if "parameters" in operation else ["coverage", "positive"]


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


def _fuzz(operation: APIOperation, mode: str, photo_bodies: st.SearchStrategy[dict[str, str]],
          check: Callable[[Case], None]) -> None:
    """Run ``check`` on the cases of ``mode``: schemathesis' fixed coverage list or a bounded Hypothesis draw."""
    if mode == "coverage":  # built as schemathesis' own coverage phase builds it
        config = HypothesisTestConfig(project=operation.schema.config, modes=[HypothesisTestMode.COVERAGE],
                                      settings=settings(FUZZ, max_examples=1))
        create_test(operation=operation, test_func=check, config=config)()
        return
    strategy = (photo_bodies.flatmap(lambda body: operation.as_strategy(body=body, media_type="application/json"))
                if mode == "photos" else operation.as_strategy(generation_mode=GenerationMode(mode)))
    settings(FUZZ, max_examples=MAX_EXAMPLES[mode])(given(case=strategy)(check))()


@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS)
def test_every_answer_matches_the_openapi_document(api_schema: OpenApiSchema, served: str, application: Application,
                                                   encoded_photos: list[str], fuzz_cases: Counter[str],
                                                   method: str, path: str, mode: str) -> None:
    upload = SPEC["paths"][path][method.lower()].get("requestBody")
    excluded: list[CheckFunction] = [positive_data_acceptance] if upload else []
    with_user = bool(upload) and "user_id" in upload["content"]["application/json"]["schema"]["required"]

    def check(case: Case) -> None:
        fuzz_cases[mode] += 1
        case.call_and_validate(base_url=served, headers=application.headers, excluded_checks=excluded)

    _fuzz(api_schema[path][method], mode, _photo_bodies(encoded_photos, with_user), check)
