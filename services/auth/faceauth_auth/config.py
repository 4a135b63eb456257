"""The auth service's configuration, read once from its environment (12-factor; set in the Helm chart)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faceauth.config import env_bool, env_choice, env_float, env_int, env_str
from faceauth.grpc.tls import ClientTls

OPERATING_POINTS = ("default", "strict")
# The repository's (and the auth image's) models.lock.json, three folders above this package.
LOCK_FILE = Path(__file__).resolve().parents[3] / "models.lock.json"
# ``enforce`` is the name ``enforce-passive`` had before the challenge existed; stored rows and settings may
# still say it, and it means the same (liveness.canonical).
LIVENESS_POLICIES = ("off", "report", "enforce-passive", "challenge")
LIVENESS_ALIASES = {"enforce": "enforce-passive"}


def canonical_policy(policy: str) -> str:
    """The liveness policy ``policy`` names, aliases resolved (``enforce`` is ``enforce-passive``)."""
    return LIVENESS_ALIASES.get(policy, policy)


@dataclass(frozen=True)
class Settings:
    """Everything the auth service needs besides its code; see services/auth/README.md for each variable."""

    database_url: str = "sqlite:///var/faceauth.db"
    metrics_port: int = 9103  # Prometheus /metrics, apart from the API's port (gunicorn listens on both)
    migrate_on_start: bool = True
    db_pool_size: int = 16  # connections per worker process, as many as its threads so none waits for one
    db_pool_timeout: float = 5.0  # seconds a request waits for a free connection before a 503
    db_statement_timeout: float = 10.0  # seconds per SQL statement (lock waits included); migrations are exempt
    db_runtime_role: str | None = None  # PostgreSQL role the service runs as; `db upgrade` grants it what it needs
    bootstrap_api_key: str | None = None
    api_key_pepper_file: Path | None = None  # HMAC key of stored API key hashes; required to check or create keys
    detector_target: str = "dns:///localhost:50051"
    embedder_target: str = "dns:///localhost:50052"
    grpc_timeout: float = 2.0  # seconds per downstream call, retries included
    # TLS to the model servers (FACEAUTH_GRPC_TLS_CA_FILE, and auth's certificate for mutual TLS:
    # FACEAUTH_GRPC_TLS_CERT_FILE, FACEAUTH_GRPC_TLS_KEY_FILE); None: plaintext.
    grpc_tls: ClientTls | None = None
    model_info_ttl: float = 60.0  # seconds between GetModelInfo refreshes
    models_lock_file: Path = LOCK_FILE  # bounds the thresholds the embedder reports (faceauth_auth.modelbounds)
    identify_operating_point: str = "strict"  # the FMR a whole 1:N search holds, split over the gallery
    jwt_current_key_file: Path = Path("var/jwt/current.pem")
    jwt_next_key_file: Path | None = Path("var/jwt/next.pem")
    jwt_previous_key_file: Path | None = None
    jwt_issuer: str = "faceauth"
    token_lifetime: int = 300  # seconds
    max_upload_bytes: int = 15 * 1024 * 1024  # a 10 MiB photo, base64-encoded in JSON
    max_templates_per_user: int = 10
    min_face_size: float = 60.0  # px, shorter side of the face box
    min_sharpness: float = 15.0  # variance of the Laplacian of the face crop at 128 px
    lockout_max_failures: int = 5  # failed face decisions in a row that lock a user id; 0: no lockout
    lockout_window: float = 900.0  # seconds of the first lockout; each next one doubles
    lockout_max_wait: float = 86400.0  # seconds of the longest temporary lockout
    lockout_permanent_after: int = 3  # the lockout that stays until an operator unlocks; 0: never
    breaker_max_failures: int = 200  # failed face decisions of one application per breaker window; 0: off
    breaker_window: float = 300.0  # seconds
    breaker_min_ratio: float = 0.5  # share of the application's decisions those failures must be
    rate_limit: str = "600 per minute"  # per application
    auth_failure_rate_limit: str = "20 per minute"  # failed API key checks per client address; then 429
    rate_limit_storage_uri: str = "memory://"
    rate_limit_allow_per_worker: bool = False  # memory:// with several gunicorn workers: development only
    # Reverse proxies in front that append to X-Forwarded-For (the Ingress controller: 1). Their count
    # decides which address is the client's, for the audit log and the per-address rate limit; 0
    # ignores the header, as anyone can send it.
    trusted_proxy_hops: int = 0
    hnsw_ef_search: int = 100
    max_inflight: int = 8  # face requests in progress at once per worker process; more wait, then 503
    admission_wait: float = 0.25  # seconds a face request may wait for a slot
    template_encryption: bool = True  # off only when set explicitly; then embeddings are stored plain
    template_key_file: Path | None = None  # without it (and encryption on) the service refuses to start
    template_previous_key_files: tuple[Path, ...] = ()  # still opened, until `templates reencrypt`
    liveness_policy: str = "report"  # for applications without their own; docs/security.md says why not enforce
    challenge_lifetime: float = 60.0  # seconds a liveness challenge may be answered in, once (POST /v1/challenges)
    log_level: str = "INFO"
    demo_enabled: bool = False  # the webcam demo page at /demo/; for development only

    @classmethod
    def from_env(cls) -> Settings:
        next_key = env_str("FACEAUTH_JWT_NEXT_KEY_FILE", str(cls.jwt_next_key_file))
        previous_key = env_str("FACEAUTH_JWT_PREVIOUS_KEY_FILE", "")
        template_key = env_str("FACEAUTH_TEMPLATE_KEY_FILE", "")
        pepper = env_str("FACEAUTH_API_KEY_PEPPER_FILE", "")
        previous_template_keys = env_str("FACEAUTH_TEMPLATE_PREVIOUS_KEY_FILES", "")
        return cls(
            database_url=env_str("FACEAUTH_DATABASE_URL", cls.database_url),
            metrics_port=env_int("FACEAUTH_METRICS_PORT", cls.metrics_port),
            migrate_on_start=env_bool("FACEAUTH_MIGRATE_ON_START", cls.migrate_on_start),
            db_pool_size=env_int("FACEAUTH_DB_POOL_SIZE", cls.db_pool_size),
            db_pool_timeout=env_float("FACEAUTH_DB_POOL_TIMEOUT", cls.db_pool_timeout),
            db_statement_timeout=env_float("FACEAUTH_DB_STATEMENT_TIMEOUT", cls.db_statement_timeout),
            db_runtime_role=env_str("FACEAUTH_DB_RUNTIME_ROLE", "") or None,
            bootstrap_api_key=env_str("FACEAUTH_BOOTSTRAP_API_KEY", "") or None,
            api_key_pepper_file=Path(pepper) if pepper else None,
            detector_target=env_str("FACEAUTH_DETECTOR_TARGET", cls.detector_target),
            embedder_target=env_str("FACEAUTH_EMBEDDER_TARGET", cls.embedder_target),
            grpc_timeout=env_float("FACEAUTH_GRPC_TIMEOUT", cls.grpc_timeout),
            grpc_tls=ClientTls.from_env(),
            model_info_ttl=env_float("FACEAUTH_MODEL_INFO_TTL", cls.model_info_ttl),
            jwt_current_key_file=Path(env_str("FACEAUTH_JWT_CURRENT_KEY_FILE", str(cls.jwt_current_key_file))),
            jwt_next_key_file=Path(next_key) if next_key else None,
            jwt_previous_key_file=Path(previous_key) if previous_key else None,
            jwt_issuer=env_str("FACEAUTH_JWT_ISSUER", cls.jwt_issuer),
            token_lifetime=env_int("FACEAUTH_TOKEN_LIFETIME", cls.token_lifetime),
            max_upload_bytes=env_int("FACEAUTH_MAX_UPLOAD_BYTES", cls.max_upload_bytes),
            max_templates_per_user=env_int("FACEAUTH_MAX_TEMPLATES_PER_USER", cls.max_templates_per_user),
            min_face_size=env_float("FACEAUTH_MIN_FACE_SIZE", cls.min_face_size),
            min_sharpness=env_float("FACEAUTH_MIN_SHARPNESS", cls.min_sharpness),
            models_lock_file=Path(env_str("FACEAUTH_MODELS_LOCK_FILE", str(cls.models_lock_file))),
            identify_operating_point=env_choice("FACEAUTH_IDENTIFY_OPERATING_POINT", cls.identify_operating_point,
                                                OPERATING_POINTS),
            lockout_max_failures=env_int("FACEAUTH_LOCKOUT_MAX_FAILURES", cls.lockout_max_failures),
            lockout_window=env_float("FACEAUTH_LOCKOUT_WINDOW", cls.lockout_window),
            lockout_max_wait=env_float("FACEAUTH_LOCKOUT_MAX_WAIT", cls.lockout_max_wait),
            lockout_permanent_after=env_int("FACEAUTH_LOCKOUT_PERMANENT_AFTER", cls.lockout_permanent_after),
            breaker_max_failures=env_int("FACEAUTH_BREAKER_MAX_FAILURES", cls.breaker_max_failures),
            breaker_window=env_float("FACEAUTH_BREAKER_WINDOW", cls.breaker_window),
            breaker_min_ratio=env_float("FACEAUTH_BREAKER_MIN_RATIO", cls.breaker_min_ratio),
            rate_limit=env_str("FACEAUTH_RATE_LIMIT", cls.rate_limit),
            auth_failure_rate_limit=env_str("FACEAUTH_AUTH_FAILURE_RATE_LIMIT", cls.auth_failure_rate_limit),
            rate_limit_storage_uri=env_str("FACEAUTH_RATE_LIMIT_STORAGE_URI", cls.rate_limit_storage_uri),
            rate_limit_allow_per_worker=env_bool("FACEAUTH_RATE_LIMIT_ALLOW_PER_WORKER",
                                                 cls.rate_limit_allow_per_worker),
            trusted_proxy_hops=env_int("FACEAUTH_TRUSTED_PROXY_HOPS", cls.trusted_proxy_hops),
            hnsw_ef_search=env_int("FACEAUTH_HNSW_EF_SEARCH", cls.hnsw_ef_search),
            max_inflight=env_int("FACEAUTH_MAX_INFLIGHT", cls.max_inflight),
            admission_wait=env_float("FACEAUTH_ADMISSION_WAIT", cls.admission_wait),
            template_encryption=env_bool("FACEAUTH_TEMPLATE_ENCRYPTION", cls.template_encryption),
            template_key_file=Path(template_key) if template_key else None,
            template_previous_key_files=tuple(Path(path) for path in previous_template_keys.split(",") if path),
            liveness_policy=canonical_policy(env_choice("FACEAUTH_LIVENESS_POLICY", cls.liveness_policy,
                                                        (*LIVENESS_POLICIES, *LIVENESS_ALIASES))),
            challenge_lifetime=env_float("FACEAUTH_CHALLENGE_LIFETIME", cls.challenge_lifetime),
            log_level=env_str("FACEAUTH_LOG_LEVEL", cls.log_level),
            demo_enabled=env_bool("FACEAUTH_DEMO_ENABLED", cls.demo_enabled),
        )
