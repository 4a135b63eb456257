"""JWT signing keys: ES256 and RS256, kid = RFC 7638 thumbprint, current/next/previous in the JWKS."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient

from faceauth_auth.tokens import TokenIssuer, generate_pem, load_key, thumbprint, write_key_pair
from tests.auth_helpers import ALICE, Application, Photo, body, upload

pytest_plugins = ["tests.auth_fixtures"]


def test_thumbprint_matches_rfc_7638_example() -> None:
    jwk = {"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
           "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebW"
                "KRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAt"
                "aSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINH"
                "aQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_tokens_verify_with_the_published_key_and_rotation_keys_are_published(tmp_path: Path, algorithm: str) -> None:
    write_key_pair(tmp_path, algorithm)
    previous = tmp_path / "previous.pem"
    previous.write_bytes(generate_pem("ES256"))
    current = load_key(tmp_path / "current.pem")
    issuer = TokenIssuer(current, [load_key(tmp_path / "next.pem"), load_key(previous)], "faceauth", 300)
    jwks = issuer.jwks()
    assert jwks["keys"][0]["kid"] == current.kid and len(jwks["keys"]) == 3
    token = issuer.issue("alice", "shop")
    header = jwt.get_unverified_header(token)
    assert header == {"alg": algorithm, "typ": "at+jwt", "kid": current.kid}  # RFC 9068: an access token
    published = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims = jwt.decode(token, published, algorithms=[algorithm], audience="shop", issuer="faceauth")
    assert claims["sub"] == "alice" and claims["client_id"] == "shop"
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, published, algorithms=[algorithm], audience="another-app")


def test_key_files_are_private_and_never_overwritten(tmp_path: Path) -> None:
    first = write_key_pair(tmp_path, "ES256")
    kid = load_key(tmp_path / "current.pem").kid
    assert write_key_pair(tmp_path, "ES256") == [] and len(first) == 2
    assert load_key(tmp_path / "current.pem").kid == kid
    assert stat.S_IMODE((tmp_path / "current.pem").stat().st_mode) == 0o600


def test_weak_or_public_only_keys_are_refused(tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p384 = ec.generate_private_key(ec.SECP384R1())
    for name, key in (("weak.pem", weak), ("p384.pem", p384)):
        (tmp_path / name).write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
        with pytest.raises(ValueError, match="P-256"):
            load_key(tmp_path / name)
    public_only = tmp_path / "public.pem"
    public_only.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    published = load_key(public_only)  # fine as the next or previous key
    with pytest.raises(ValueError, match="private key"):
        TokenIssuer(published, [], "faceauth", 300)


def test_rs256_service_issues_rs256_tokens(make_app: Callable[..., Flask], application: Application, photo: Photo,
                                           tmp_path: Path) -> None:
    write_key_pair(tmp_path, "RS256")
    http = make_app(jwt_current_key_file=tmp_path / "current.pem", jwt_next_key_file=tmp_path / "next.pem",
                    token_lifetime=60).test_client()
    enrolled = http.post("/auth/face-register", headers=application.headers, **upload("alice", photo(ALICE, 2)))
    assert enrolled.status_code == 201
    login = body(http.post("/auth/face-login", headers=application.headers, **upload("alice", photo(ALICE, 3))))
    assert login["expires_in"] == 60
    keys = jwt.PyJWKSet.from_dict(body(http.get("/.well-known/jwks.json")))
    header = jwt.get_unverified_header(login["access_token"])
    assert header["alg"] == "RS256"
    claims = jwt.decode(login["access_token"], keys[header["kid"]], algorithms=["RS256"], audience=application.name)
    assert claims["exp"] - claims["iat"] == 60


def test_answers_that_need_a_key_are_never_cached_and_public_ones_may_be(http: FlaskClient,
                                                                          application: Application) -> None:
    """Tokens (test_token_hygiene), users, faces and the audit log are one application's: no-store, also on errors."""
    for answer in (http.get("/v1/users/nobody", headers=application.headers), http.get("/v1/audit"),
                   http.get("/v1/audit", headers=application.headers)):
        assert answer.headers["Cache-Control"] == "no-store" and answer.headers["Pragma"] == "no-cache"
    jwks = http.get("/.well-known/jwks.json").headers  # cached by verifiers for a while, as it should be
    assert jwks["Cache-Control"] == "public, max-age=300" and "Pragma" not in jwks
