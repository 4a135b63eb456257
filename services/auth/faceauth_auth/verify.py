"""How a backend verifies a faceauth access token: the documented recipe, as code to copy or import.

Nothing is taken from the token itself except the ``kid`` that picks a key out of the published JWKS:
the algorithms are fixed here (so ``alg: none`` and HMAC tokens "signed" with the public key are
refused), the key's own algorithm must match the token's, and the audience, the issuer and every
claim faceauth always sets are required. The header's ``typ`` must say ``at+jwt`` (RFC 9068), so
that no other kind of JWT signed with the same keys passes for an access token.
tests/test_token_hygiene.py forges the attacks against it.
"""

from __future__ import annotations

from typing import Any

import jwt

ALGORITHMS = ["ES256", "RS256"]
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp", "jti", "client_id"]
# RFC 9068 section 4: "at+jwt", or the full media type; media types compare case-insensitively.
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
# Clock skew tolerated between faceauth and the backend; small next to the 300 s token lifetime.
LEEWAY_SECONDS = 30


def verify_token(token: str, jwks: jwt.PyJWKClient, audience: str, issuer: str = "faceauth",
                 leeway: float = LEEWAY_SECONDS) -> dict[str, Any]:
    """The claims of a valid ``token`` meant for ``audience`` (the application's name).

    Raises ``jwt.PyJWTError`` for anything else: ``InvalidTokenError`` subclasses for a bad token,
    ``PyJWKClientError`` when its ``kid`` is not published. ``jwks`` is a long-lived
    ``jwt.PyJWKClient("https://<auth host>/.well-known/jwks.json")`` that caches the keys.
    """
    key = jwks.get_signing_key_from_jwt(token)  # a PyJWK: bound to the algorithm published with it
    decoded = jwt.decode_complete(token, key, algorithms=ALGORITHMS, audience=audience, issuer=issuer,
                                  leeway=leeway, options={"require": REQUIRED_CLAIMS})
    if str(decoded["header"].get("typ")).lower() not in ACCESS_TOKEN_TYPES:
        raise jwt.InvalidTokenError("not an access token: the header's typ must be at+jwt")
    claims: dict[str, Any] = decoded["payload"]
    return claims
