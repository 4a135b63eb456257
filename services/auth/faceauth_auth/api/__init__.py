"""The HTTP API, one blueprint per area; openapi.py documents every route registered here."""
