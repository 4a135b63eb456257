"""The WSGI entry point gunicorn loads in every worker (see gunicorn_conf, which migrates beforehand)."""

from __future__ import annotations

from faceauth import logs
from faceauth_auth.app import create_app
from faceauth_auth.config import Settings

settings = Settings.from_env()
logs.configure("auth", settings.log_level)
app = create_app(settings, prepare=False)
