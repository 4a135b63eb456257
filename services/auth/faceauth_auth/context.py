"""What the request handlers share, built once by the app factory and found through ``current_app``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from flask import current_app

from faceauth_auth.breaker import FailureBreaker
from faceauth_auth.config import Settings
from faceauth_auth.db import Database
from faceauth_auth.lockout import LockoutPolicy
from faceauth_auth.pipeline import FacePipeline
from faceauth_auth.templatecrypto import TemplateCipher
from faceauth_auth.tokens import TokenIssuer

EXTENSION = "faceauth"


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    pipeline: FacePipeline
    tokens: TokenIssuer
    lockout: LockoutPolicy
    templates: TemplateCipher
    breaker: FailureBreaker


def services() -> Services:
    return cast(Services, current_app.extensions[EXTENSION])
