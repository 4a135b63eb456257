"""1:N identification: the enrolled template nearest to a probe, within one application.

With pgvector (migration 0002) Postgres answers in SQL and its planner chooses: an exact scan of a
small application's templates, the HNSW index (L2) for a large one. Without pgvector every template
of the application made by the current model is read and compared exactly in process, which is fine
for thousands of templates and the reason to run Postgres with pgvector beyond that. With template
encryption on there is no plaintext vector to index, so the search is always the exact one in
process, over the application's decrypted templates.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sqlalchemy.orm import Session

from faceauth_auth.faces import EmbeddingModel
from faceauth_auth.matching import nearest_distance
from faceauth_auth.repositories import users
from faceauth_auth.templatecrypto import TemplateCipher


class Nearest(NamedTuple):
    """The nearest template's owner and distance, and how many templates were searched (the gallery)."""

    user_id: str
    distance: float
    gallery: int


def nearest(session: Session, application_id: int, model: EmbeddingModel, probe: np.ndarray,
            vector_dimensions: frozenset[int], ef_search: int, cipher: TemplateCipher,
            skip_users_of: EmbeddingModel | None = None) -> Nearest | None:
    """The nearest template made by ``model``, or None when there is none.

    ``skip_users_of``: leave out users who have a template of that model (during a migration window a
    legacy model decides only for users not yet enrolled with the primary one).
    """
    if model.dimensions in vector_dimensions:
        found = users.nearest_by_vector(session, application_id, model, probe, ef_search, skip_users_of)
        if found is None:
            return None
        return Nearest(*found, users.gallery_size(session, application_id, model, skip_users_of))
    owners, embeddings = users.application_embeddings(session, application_id, model, cipher, skip_users_of)
    if not owners:
        return None
    best, distance = nearest_distance(probe, embeddings)
    return Nearest(owners[best], distance, len(owners))
