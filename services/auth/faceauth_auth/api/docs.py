"""The OpenAPI document as JSON and as a plain HTML page rendered here (no JavaScript, no CDN)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template_string

from faceauth_auth.authn import public
from faceauth_auth.openapi import SPEC

bp = Blueprint("docs", __name__)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ spec.info.title }} API</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.4}
section{border-top:1px solid #ccc;padding:.5rem 0}
code.m{font-weight:bold;text-transform:uppercase;margin-right:.5rem}
table{border-collapse:collapse}td{padding:.1rem .6rem;vertical-align:top}
</style></head><body>
<h1>{{ spec.info.title }} API {{ spec.info.version }}</h1>
<p>{{ spec.info.description }}</p>
<p>Authenticate with <code>Authorization: Bearer &lt;API key&gt;</code> or <code>X-API-Key</code>.
Machine-readable: <a href="openapi.json">openapi.json</a> (OpenAPI {{ spec.openapi }}).</p>
{% for path, item in spec.paths.items() %}{% for method, op in item.items() %}
<section id="{{ method }}{{ path }}">
<h2><code class="m">{{ method }}</code><code>{{ path }}</code></h2>
<p><strong>{{ op.summary }}</strong>{% if op.security == [] %} (no API key){% endif %}.
{{ op.description }}</p>
{% if op.requestBody %}<p>Body: {{ op.requestBody.content.keys() | join(" or ") }}</p>{% endif %}
<table>{% for status, response in op.responses.items() %}
<tr><td><code>{{ status }}</code></td><td>{{ response.description }}</td></tr>{% endfor %}
</table></section>
{% endfor %}{% endfor %}
</body></html>
"""


@bp.get("/openapi.json")
@public
def openapi() -> Response:
    return jsonify(SPEC)


@bp.get("/docs")
@public
def docs() -> str:
    return render_template_string(_PAGE, spec=SPEC)
