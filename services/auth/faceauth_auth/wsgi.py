"""The WSGI entry point gunicorn loads in every worker (see gunicorn_conf, which migrates beforehand).

gunicorn listens on FACEAUTH_PORT (the API) and FACEAUTH_METRICS_PORT (Prometheus); ``application``
hands each request to the app of the port it arrived on, so /metrics is never served on the API's.
"""

from __future__ import annotations

from faceauth import logs
from faceauth_auth.app import by_port, create_app, create_metrics_app
from faceauth_auth.config import Settings

settings = Settings.from_env()
logs.configure("auth", settings.log_level)
app = create_app(settings, prepare=False)
application = by_port(app, create_metrics_app(app), settings.metrics_port)
