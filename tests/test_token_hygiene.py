"""Token hygiene: forged and doctored tokens fail the documented verification recipe.

A real user logs in through the real service (detector, embedder, Postgres) on a real port; the
recipe (faceauth_auth.verify) fetches the keys from that service's JWKS, as a backend would. Each
attack is then built from the genuine token: unsigned, HMAC-signed with the public key, signed by a
stranger's key, or signed by the service's own key but with a wrong audience, issuer or lifetime.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from faceauth_auth.config import Settings
from faceauth_auth.tokens import SigningKey, load_key
from faceauth_auth.verify import LEEWAY_SECONDS, REQUIRED_CLAIMS, verify_token
from tests.auth_helpers import ALICE, Application, Photo, http_upload

pytest_plugins = ["tests.auth_fixtures"]

Claims = dict[str, Any]
LOGINS = 20  # real logins whose jti must all differ


@dataclass(frozen=True)
class Issued:
    """Genuine tokens from real logins of one user, and who they are for."""

    tokens: list[str]
    audience: str
    login: dict[str, Any]  # the first login's JSON answer
    login_headers: dict[str, str]  # and its HTTP headers

    @property
    def claims(self) -> Claims:
        return jwt.decode(self.tokens[0], options={"verify_signature": False})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned_part(header: dict[str, Any], claims: Claims) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _hs256(secret: bytes, header: dict[str, Any], claims: Claims) -> str:
    """An HS256 token built by hand: PyJWT itself refuses to use a public key as an HMAC secret."""
    signing_input = _unsigned_part({**header, "alg": "HS256"}, claims)
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def _post(url: str, headers: dict[str, str], user_id: str, image: bytes) -> tuple[dict[str, Any], dict[str, str]]:
    with urllib.request.urlopen(http_upload(url, headers, user_id, image), timeout=60) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer, dict(response.headers)


@pytest.fixture(scope="module")
def issued(served: str, new_application: Callable[[], Application], photo: Photo) -> Issued:
    app = new_application()
    _post(f"{served}/auth/face-register", app.headers, "alice", photo(ALICE, 2))
    logins = [_post(f"{served}/auth/face-login", app.headers, "alice", photo(ALICE, 3 + i % 2))
              for i in range(LOGINS)]
    return Issued([login["access_token"] for login, _ in logins], app.name, logins[0][0], logins[0][1])


@pytest.fixture(scope="module")
def jwks(served: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(f"{served}/.well-known/jwks.json")


@pytest.fixture(scope="module")
def service_key(jwt_dir: Path) -> SigningKey:
    """The service's own signing key: forged claims carry a genuine signature."""
    return load_key(jwt_dir / "current.pem")


def _signed(key: SigningKey, claims: Claims, headers: dict[str, str] | None = None) -> str:
    """``claims`` with a genuine signature of ``key``, an access token's header under its kid unless ``headers``
    say otherwise."""
    assert key.private_key is not None
    return jwt.encode(claims, key.private_key, algorithm="ES256",
                      headers={"typ": "at+jwt", "kid": key.kid} if headers is None else headers)


def test_a_genuine_token_verifies_with_the_recipe(issued: Issued, jwks: jwt.PyJWKClient) -> None:
    for token in issued.tokens:
        claims = verify_token(token, jwks, audience=issued.audience)
        assert claims["sub"] == "alice" and claims["iss"] == "faceauth" and claims["amr"] == ["face"]
        assert claims["client_id"] == claims["aud"] == issued.audience  # RFC 9068 section 2.2
    header = jwt.get_unverified_header(issued.tokens[0])
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt"  # RFC 9068 section 2.1


def test_the_token_response_is_never_cached(issued: Issued) -> None:
    """RFC 6749 section 5.1: a response carrying a token says no-store (and no-cache to HTTP/1.0 caches)."""
    assert issued.login_headers["Cache-Control"] == "no-store"
    assert issued.login_headers["Pragma"] == "no-cache"


@pytest.mark.parametrize("typ", ["JWT", "", "id+jwt", "at+jwt+x"])
def test_a_genuinely_signed_jwt_that_is_not_an_access_token_is_rejected(
        issued: Issued, jwks: jwt.PyJWKClient, service_key: SigningKey, typ: str) -> None:
    """Another kind of JWT made with the same keys (an ID token, say) must not pass for an access token."""
    token = _signed(service_key, issued.claims, {"kid": service_key.kid, "typ": typ})  # "": no typ at all
    assert jwt.get_unverified_header(token).get("typ") == (typ or None)
    with pytest.raises(jwt.InvalidTokenError, match="typ"):
        verify_token(token, jwks, audience=issued.audience)


def test_the_full_media_type_is_an_access_token_too(issued: Issued, jwks: jwt.PyJWKClient,
                                                    service_key: SigningKey) -> None:
    token = _signed(service_key, issued.claims, {"kid": service_key.kid, "typ": "Application/AT+JWT"})
    assert verify_token(token, jwks, audience=issued.audience)["sub"] == "alice"


def test_every_token_has_its_own_jti(issued: Issued) -> None:
    ids = [jwt.decode(token, options={"verify_signature": False})["jti"] for token in issued.tokens]
    assert len(set(ids)) == LOGINS
    assert all(uuid.UUID(jti).version == 4 for jti in ids)


def test_lifetime_is_short_by_default(issued: Issued) -> None:
    assert Settings().token_lifetime <= 15 * 60
    claims = issued.claims
    assert claims["exp"] - claims["iat"] == issued.login["expires_in"] == Settings().token_lifetime
    assert abs(claims["iat"] - time.time()) < 600  # issued now, not back- or forward-dated


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_tokens_are_rejected(issued: Issued, jwks: jwt.PyJWKClient, service_key: SigningKey,
                                      alg: str) -> None:
    token = _unsigned_part({"alg": alg, "typ": "JWT", "kid": service_key.kid}, issued.claims) + "."
    with pytest.raises(jwt.InvalidAlgorithmError):
        verify_token(token, jwks, audience=issued.audience)


def test_hmac_signed_with_the_public_key_is_rejected(issued: Issued, jwks: jwt.PyJWKClient,
                                                     service_key: SigningKey) -> None:
    """The classic algorithm confusion: the verifier's public key used as the HMAC secret."""
    assert service_key.private_key is not None
    public = service_key.private_key.public_key()
    secrets = [public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
               public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
               json.dumps(service_key.jwk).encode()]
    for secret in secrets:
        token = _hs256(secret, {"typ": "JWT", "kid": service_key.kid}, issued.claims)
        with pytest.raises(jwt.InvalidAlgorithmError):
            verify_token(token, jwks, audience=issued.audience)


def test_a_kid_that_is_not_published_is_rejected(issued: Issued, jwks: jwt.PyJWKClient,
                                                 service_key: SigningKey) -> None:
    for headers in ({"kid": "not-a-key"}, {}):
        with pytest.raises(jwt.PyJWKClientError):
            verify_token(_signed(service_key, issued.claims, headers), jwks, audience=issued.audience)


def test_another_key_with_the_real_kid_is_rejected(issued: Issued, jwks: jwt.PyJWKClient,
                                                   service_key: SigningKey) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(issued.claims, stranger, algorithm="ES256", headers={"kid": service_key.kid})
    with pytest.raises(jwt.InvalidSignatureError):
        verify_token(token, jwks, audience=issued.audience)


def test_a_changed_claim_breaks_the_signature(issued: Issued, jwks: jwt.PyJWKClient) -> None:
    header, _, signature = issued.tokens[0].split(".")
    payload = _b64(json.dumps({**issued.claims, "sub": "mallory"}).encode())
    with pytest.raises(jwt.InvalidSignatureError):
        verify_token(f"{header}.{payload}.{signature}", jwks, audience=issued.audience)


def test_an_algorithm_other_than_the_keys_is_rejected(issued: Issued, jwks: jwt.PyJWKClient,
                                                      service_key: SigningKey) -> None:
    """An RS256 header on the service's EC key id: the published key's own algorithm wins."""
    token = _unsigned_part({"alg": "RS256", "typ": "JWT", "kid": service_key.kid}, issued.claims) + "." + _b64(
        b"\0" * 256)
    with pytest.raises(jwt.PyJWTError):
        verify_token(token, jwks, audience=issued.audience)


@pytest.mark.parametrize(("change", "error"), [
    ({"aud": "another-application"}, jwt.InvalidAudienceError),
    ({"aud": ["another-application"]}, jwt.InvalidAudienceError),
    ({"iss": "https://evil.example"}, jwt.InvalidIssuerError),
    ({"exp": -LEEWAY_SECONDS - 5}, jwt.ExpiredSignatureError),
    ({"iat": 3600, "exp": 3900}, jwt.ImmatureSignatureError),  # issued in the future
], ids=["wrong-aud", "wrong-aud-list", "wrong-iss", "expired", "future-iat"])
def test_genuinely_signed_tokens_with_wrong_claims_are_rejected(issued: Issued, jwks: jwt.PyJWKClient,
                                                                service_key: SigningKey, change: Claims,
                                                                error: type[Exception]) -> None:
    now = int(time.time())
    claims = {**issued.claims, **{name: now + value if name in ("exp", "iat") else value
                                  for name, value in change.items()}}
    with pytest.raises(error):
        verify_token(_signed(service_key, claims), jwks, audience=issued.audience)


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_a_missing_claim_is_rejected(issued: Issued, jwks: jwt.PyJWKClient, service_key: SigningKey,
                                     claim: str) -> None:
    claims = {name: value for name, value in issued.claims.items() if name != claim}
    with pytest.raises(jwt.MissingRequiredClaimError):
        verify_token(_signed(service_key, claims), jwks, audience=issued.audience)


def test_expiry_allows_only_the_documented_leeway(issued: Issued, jwks: jwt.PyJWKClient,
                                                  service_key: SigningKey) -> None:
    now = int(time.time())
    just_expired = {**issued.claims, "iat": now - 300, "exp": now - LEEWAY_SECONDS // 2}
    assert verify_token(_signed(service_key, just_expired), jwks, audience=issued.audience)["sub"] == "alice"
    with pytest.raises(jwt.ExpiredSignatureError):
        verify_token(_signed(service_key, just_expired), jwks, audience=issued.audience, leeway=0)
