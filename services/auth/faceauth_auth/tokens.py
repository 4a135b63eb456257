"""Signed access tokens (JWT) and the JWKS that lets anyone verify them.

Keys live in PEM files: the *current* key signs, the *next* key is published ahead of time so
verifiers already cache it when it becomes current, and an optional *previous* key stays published
until the tokens it signed have expired. Rotation is: next -> current, current -> previous, a new
next. The ``kid`` is the key's RFC 7638 thumbprint, so it never depends on a file name.

Tokens follow RFC 9068 (JWT profile for OAuth 2.0 access tokens): header ``typ`` ``at+jwt``, so a
verifier can tell them from ID tokens or other JWTs signed by the same keys, and a ``client_id``
claim naming the application they were issued to (the same as ``aud``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from faceauth_auth.verify import ACCESS_TOKEN_TYPES, REQUIRED_CLAIMS

ALGORITHMS = ("ES256", "RS256")
TOKEN_TYPE = "at+jwt"  # RFC 9068 section 2.1
MIN_RSA_BITS = 2048
# The members RFC 7638 hashes for each key type.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class SigningKey:
    """One key pair (or just its public half), its algorithm and its JWK."""

    kid: str
    algorithm: str
    jwk: dict[str, str]
    private_key: PrivateKey | None = field(default=None, repr=False)


def thumbprint(jwk: dict[str, str]) -> str:
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def load_key(path: Path) -> SigningKey:
    """A P-256 (ES256) or RSA >= 2048 bit (RS256) key from a PEM file, private or public."""
    data = path.read_bytes()
    private_key: Any = None
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
        public_key = private_key.public_key()
    except ValueError:
        public_key = serialization.load_pem_public_key(data)
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
        algorithm, jwk = "ES256", ECAlgorithm.to_jwk(public_key, as_dict=True)
    elif isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size >= MIN_RSA_BITS:
        algorithm, jwk = "RS256", RSAAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        raise ValueError(f"{path}: need a P-256 EC key (ES256) or an RSA key of at least {MIN_RSA_BITS} bits")
    kid = thumbprint(jwk)
    return SigningKey(kid, algorithm, {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}, private_key)


def generate_pem(algorithm: str) -> bytes:
    """A new private key in PKCS#8 PEM for ``algorithm``."""
    key: PrivateKey = (ec.generate_private_key(ec.SECP256R1()) if algorithm == "ES256"
                       else rsa.generate_private_key(public_exponent=65537, key_size=3072))
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_key_pair(directory: Path, algorithm: str) -> list[Path]:
    """current.pem and next.pem in ``directory``, readable by the owner only; existing files are kept."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("current.pem", "next.pem"):
        path = directory / name
        if path.exists():
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(generate_pem(algorithm))
        written.append(path)
    return written


class TokenIssuer:
    """Signs access tokens with the current key; publishes every key a verifier may meet."""

    def __init__(self, current: SigningKey, others: list[SigningKey], issuer: str, lifetime: int) -> None:
        if current.private_key is None:
            raise ValueError("the current JWT key file must hold a private key")
        self._signer: PrivateKey = current.private_key
        self.current = current
        self.keys = [current, *(key for key in others if key.kid != current.kid)]
        self.issuer = issuer
        self.lifetime = lifetime

    def issue(self, subject: str, audience: str) -> str:
        """A token for ``subject`` (the application's user id) meant for ``audience`` (the application)."""
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": audience, "client_id": audience, "sub": subject, "iat": now,
                  "exp": now + self.lifetime, "jti": str(uuid.uuid4()), "amr": ["face"]}
        return jwt.encode(claims, self._signer, algorithm=self.current.algorithm,
                          headers={"typ": TOKEN_TYPE, "kid": self.current.kid})

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.jwk for key in self.keys]}

    def verify(self, token: str, audience: str) -> dict[str, Any]:
        """The claims of an unexpired access token this service issued for ``audience``, checked as
        verify.verify_token checks them; raises ``jwt.PyJWTError`` for anything else."""
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((key for key in self.keys if key.kid == kid), None)
        if key is None:
            raise jwt.InvalidTokenError("the token was not signed with a key of this service")
        decoded = jwt.decode_complete(token, jwt.PyJWK(key.jwk), algorithms=[key.algorithm], audience=audience,
                                      issuer=self.issuer, options={"require": REQUIRED_CLAIMS})
        if str(decoded["header"].get("typ")).lower() not in ACCESS_TOKEN_TYPES:
            raise jwt.InvalidTokenError("not an access token")
        claims: dict[str, Any] = decoded["payload"]
        return claims
