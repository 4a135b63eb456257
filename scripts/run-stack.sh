#!/usr/bin/env bash
# `make run`: detector, embedder and auth on localhost, with development keys and an API key.
# Ctrl-C (or SIGTERM) stops all three. DATABASE_URL=postgresql://... uses Postgres instead of SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
mkdir -p var
export FACEAUTH_MODEL_DIR=${FACEAUTH_MODEL_DIR:-$PWD/var/models}
export FACEAUTH_DATABASE_URL=${DATABASE_URL:-${FACEAUTH_DATABASE_URL:-sqlite:///$PWD/var/faceauth.db}}
export FACEAUTH_JWT_CURRENT_KEY_FILE=$PWD/var/jwt/current.pem FACEAUTH_JWT_NEXT_KEY_FILE=$PWD/var/jwt/next.pem
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
export FACEAUTH_DEMO_ENABLED=${FACEAUTH_DEMO_ENABLED:-1}
# Two gunicorn workers, as in production, counting rate limits in memory: each worker counts alone,
# which auth refuses unless told (fine on one's own machine). FACEAUTH_RATE_LIMIT_STORAGE_URI=redis://...
# shares the counts instead.
export FACEAUTH_RATE_LIMIT_ALLOW_PER_WORKER=${FACEAUTH_RATE_LIMIT_ALLOW_PER_WORKER:-true}
[ -f var/jwt/current.pem ] || "$bin/python" -m faceauth_auth keys generate-jwt --out var/jwt
# Templates are encrypted at rest: a development key unless FACEAUTH_TEMPLATE_KEY_FILE names one.
if [ -z "${FACEAUTH_TEMPLATE_KEY_FILE:-}" ] && [ "${FACEAUTH_TEMPLATE_ENCRYPTION:-on}" != off ]; then
  export FACEAUTH_TEMPLATE_KEY_FILE=$PWD/var/template.key
  [ -f var/template.key ] || "$bin/python" -m faceauth_auth keys generate-template-key --out var/template.key
fi
# Stored API key hashes are keyed (HMAC) with a pepper: a development one unless FACEAUTH_API_KEY_PEPPER_FILE names one.
if [ -z "${FACEAUTH_API_KEY_PEPPER_FILE:-}" ]; then
  export FACEAUTH_API_KEY_PEPPER_FILE=$PWD/var/api-key-pepper
  [ -f var/api-key-pepper ] || "$bin/python" -m faceauth_auth keys generate-api-key-pepper --out var/api-key-pepper
fi
if [ -z "${FACEAUTH_BOOTSTRAP_API_KEY:-}" ]; then
  FACEAUTH_BOOTSTRAP_API_KEY=$("$bin/python" -c 'import secrets; print("fa_dev_" + secrets.token_urlsafe(32))')
  generated=1
fi
export FACEAUTH_BOOTSTRAP_API_KEY

stop_all() {
  kill -TERM $(jobs -p) 2>/dev/null || true
  wait
  echo "faceauth stopped"
}
trap stop_all EXIT
trap 'exit 0' INT TERM
mkdir -p var/log
"$bin/python" -m faceauth_detector > var/log/detector.log 2>&1 &
"$bin/python" -m faceauth_embedder > var/log/embedder.log 2>&1 &
"$bin/gunicorn" -c python:faceauth_auth.gunicorn_conf > var/log/auth.log 2>&1 &

echo "starting detector, embedder and auth (logs in var/log/) ..."
for _ in $(seq 1 180); do
  if curl -fs http://127.0.0.1:8000/readyz > /dev/null 2>&1; then
    cat <<TXT

faceauth is ready.
  API           http://127.0.0.1:8000   (docs: http://127.0.0.1:8000/docs)
  web demo      http://127.0.0.1:8000/demo/   (paste the API key below; FACEAUTH_DEMO_ENABLED=0 hides it)
  JWKS          http://127.0.0.1:8000/.well-known/jwks.json
  metrics       auth :9103/metrics, detector :9101/metrics, embedder :9102/metrics
  API key       ${FACEAUTH_BOOTSTRAP_API_KEY}${generated:+   (generated; set FACEAUTH_BOOTSTRAP_API_KEY to choose one)}

Try it:
  curl -H "Authorization: Bearer \$KEY" -F user_id=alice -F image=@alice1.jpg http://127.0.0.1:8000/auth/face-register
  curl -H "Authorization: Bearer \$KEY" -F user_id=alice -F image=@alice2.jpg http://127.0.0.1:8000/auth/face-login

Ctrl-C stops everything.
TXT
    while sleep 1; do
      for pid in $(jobs -p); do
        kill -0 "$pid" 2>/dev/null || { echo "a service exited; see var/log/" >&2; exit 1; }
      done
    done
  fi
  sleep 1
done
echo "the stack did not become ready in 180 s; see var/log/" >&2
exit 1
