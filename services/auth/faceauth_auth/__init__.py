"""faceauth's HTTP service: enrolment, face login, verification and identification, JWTs and JWKS.

It owns the data (Postgres or SQLite through SQLAlchemy) and the decisions; the detector and
embedder gRPC services do the heavy lifting on the photos.
"""
