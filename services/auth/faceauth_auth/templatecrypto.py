"""Template protection: embeddings sealed with AES-256-GCM under an application-level key.

Every row gets a fresh random 96-bit nonce, and the associated data names the row (template id,
owner, model), so a ciphertext copied into another row, another user's or another model's, fails
to open. The key's id (the first 16 hex digits of its SHA-256) is stored with each row: rows sealed
under a previous key stay readable while that key is configured, until ``python -m faceauth_auth
templates reencrypt`` moves them to the current one. Rows without a key id are plaintext (stored
before encryption was turned on, or with it off): once encryption is on they are refused when read,
since anyone able to write to the database could otherwise plant a face of their own as plaintext
in any row. ``templates reencrypt`` alone still opens them, to seal them. Losing every key makes
the stored templates unreadable for good.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceauth_auth.config import Settings

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96 bits, GCM's native nonce size
_BINDING_VERSION = "faceauth-template-v1"


class TemplateKeyError(ValueError):
    """The template key configuration cannot be used (missing, unreadable or malformed key)."""


class TemplateDecryptionError(Exception):
    """A stored template cannot be opened: its key is not configured, or it was tampered with or moved."""


def key_id_of(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def generate_key_file(path: Path) -> str:
    """Write a new random key (base64, mode 0600) to ``path``, never over an existing file; returns its id."""
    key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(base64.b64encode(key).decode() + "\n")
    return key_id_of(key)


def read_key_file(path: Path, what: str, error: type[Exception]) -> bytes:
    """The bytes a key file (base64, as generate_key_file writes it) holds; ``error`` names ``what`` when
    the file cannot be read or is not base64. The template keys and the API key pepper are such files."""
    try:
        return base64.b64decode(path.read_text().strip(), validate=True)
    except OSError as failure:
        raise error(f"cannot read the {what} {path}: {failure.strerror}") from failure
    except (binascii.Error, UnicodeDecodeError) as failure:
        raise error(f"the {what} {path} is not base64") from failure


def load_key(path: Path) -> bytes:
    """The key in ``path``: base64 of 32 bytes, as generate_key_file writes it."""
    key = read_key_file(path, "template key", TemplateKeyError)
    if len(key) != KEY_BYTES:
        raise TemplateKeyError(f"the template key {path} must hold {KEY_BYTES} bytes, not {len(key)}")
    return key


def associated_data(template_id: uuid.UUID, user_id: int, model_name: str, model_version: int,
                    dimensions: int) -> bytes:
    """What a ciphertext is bound to: its row, its owner and the model that made the embedding."""
    return "|".join((_BINDING_VERSION, str(template_id), str(user_id), model_name, str(model_version),
                     str(dimensions))).encode()


class TemplateCipher:
    """Seals with the current key (none: encryption off, bytes stay plain) and opens with any configured key."""

    def __init__(self, current: bytes | None, previous: Iterable[bytes] = (), *, read_plaintext: bool = False) -> None:
        self.current_key_id = key_id_of(current) if current is not None else None
        keys = [current] if current is not None else []
        self._keys = {key_id_of(key): AESGCM(key) for key in [*keys, *previous]}
        # Plaintext rows (key id NULL) are read only with encryption off, or to seal them (for_resealing).
        self._read_plaintext = read_plaintext or current is None

    def for_resealing(self) -> TemplateCipher:
        """The same keys, also opening plaintext rows: for ``templates reencrypt``, which seals them."""
        resealing = copy.copy(self)
        resealing._read_plaintext = True
        return resealing

    @property
    def encrypting(self) -> bool:
        return self.current_key_id is not None

    def seal(self, plaintext: bytes, binding: bytes) -> tuple[str | None, bytes]:
        """(key id, stored bytes): nonce + ciphertext + tag under the current key, or the plaintext itself."""
        if self.current_key_id is None:
            return None, plaintext
        nonce = os.urandom(NONCE_BYTES)
        return self.current_key_id, nonce + self._keys[self.current_key_id].encrypt(nonce, plaintext, binding)

    def open(self, key_id: str | None, stored: bytes, binding: bytes) -> bytes:
        if key_id is None:
            if not self._read_plaintext:
                raise TemplateDecryptionError("a template is stored unencrypted (key id NULL) while template "
                                              "encryption is on; refused: run `python -m faceauth_auth templates "
                                              "reencrypt` to seal such rows")
            return stored
        aead = self._keys.get(key_id)
        if aead is None:
            raise TemplateDecryptionError(f"template key {key_id} is not configured (FACEAUTH_TEMPLATE_KEY_FILE, "
                                        "FACEAUTH_TEMPLATE_PREVIOUS_KEY_FILES)")
        try:
            return aead.decrypt(stored[:NONCE_BYTES], stored[NONCE_BYTES:], binding)
        except InvalidTag:
            raise TemplateDecryptionError("a template failed authentication: tampered with or moved") from None


def from_settings(settings: Settings) -> TemplateCipher:
    """The configured cipher; refuses a configuration without a key unless encryption is explicitly off."""
    previous = [load_key(path) for path in settings.template_previous_key_files]
    if not settings.template_encryption:
        return TemplateCipher(None, previous)
    if settings.template_key_file is None:
        raise TemplateKeyError("no template key: set FACEAUTH_TEMPLATE_KEY_FILE to a key made by `python -m "
                               "faceauth_auth keys generate-template-key --out FILE`, or set "
                               "FACEAUTH_TEMPLATE_ENCRYPTION=off to store embeddings unencrypted")
    return TemplateCipher(load_key(settings.template_key_file), previous)
