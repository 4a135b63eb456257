"""Key rotation for templates: reseal every stored embedding under the current template key.

One transaction per batch, each with its audit event, so a run can stop anywhere and the next one
carries on where it stopped; rows already under the current key are left alone (idempotent). Rows
stored in plaintext (key id NULL) are sealed too: it is the only reader that opens them once
encryption is on.
"""

from __future__ import annotations

from faceauth_auth.db import Database
from faceauth_auth.repositories import audit, users
from faceauth_auth.repositories.audit import Event
from faceauth_auth.templatecrypto import TemplateCipher


def reencrypt(db: Database, cipher: TemplateCipher, batch_size: int = 500) -> int:
    """How many templates were moved to ``cipher``'s current key."""
    if not cipher.encrypting:
        raise ValueError("template encryption is off: set FACEAUTH_TEMPLATE_KEY_FILE to the key to seal with")
    resealing = cipher.for_resealing()  # the only reader of plaintext rows once encryption is on
    moved = 0
    while True:
        with db.transaction() as session:
            count = users.reseal_batch(session, resealing, batch_size, db.vector_column_dimensions)
            if count:
                audit.record(session, Event.TEMPLATE_KEY_ROTATED, "success", application_id=None,
                             detail=f"{count} templates sealed under key {cipher.current_key_id}")
        if count == 0:
            return moved
        moved += count
