"""Optional mutual TLS between auth and the model servers, configured from PEM files (Kubernetes Secrets).

Server side (detector, embedder): ``FACEAUTH_GRPC_TLS_CERT_FILE`` and ``FACEAUTH_GRPC_TLS_KEY_FILE`` make
the gRPC port TLS-only; ``FACEAUTH_GRPC_TLS_CLIENT_CA_FILE`` then requires every client to present a
certificate signed by that CA (mutual TLS): a client without one, or with one from another CA, fails the
handshake before any call. The files are read again when they change (cert-manager renews them in place),
for every new connection.

Client side (auth): ``FACEAUTH_GRPC_TLS_CA_FILE`` (the CA the servers' certificates must chain to; their
names must match the target's host, e.g. the headless Service's DNS name) and, for mutual TLS,
``FACEAUTH_GRPC_TLS_CERT_FILE`` / ``FACEAUTH_GRPC_TLS_KEY_FILE`` (auth's own certificate). Channels are
built once per process, so a renewed client certificate is used after a restart.

Neither side set: plaintext, as before (``make run``, tests). Kubelet's gRPC probes cannot speak TLS, so a
TLS server also answers health checks alone, in plaintext, on ``FACEAUTH_GRPC_HEALTH_PORT``
(faceauth.grpc.server).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from faceauth.config import env_str

log = logging.getLogger(__name__)


def _path(name: str) -> Path | None:
    value = env_str(name, "").strip()
    return Path(value) if value else None


def _pair(cert: Path | None, key: Path | None, what: str) -> None:
    if (cert is None) != (key is None):
        raise ValueError(f"{what}: FACEAUTH_GRPC_TLS_CERT_FILE and FACEAUTH_GRPC_TLS_KEY_FILE go together; "
                         "set both or neither")


@dataclass(frozen=True)
class ServerTls:
    """A model server's certificate and key, and the CA its clients' certificates must chain to (mTLS)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None  # set: clients must present a certificate signed by it

    @classmethod
    def from_env(cls) -> ServerTls | None:
        cert, key = _path("FACEAUTH_GRPC_TLS_CERT_FILE"), _path("FACEAUTH_GRPC_TLS_KEY_FILE")
        client_ca = _path("FACEAUTH_GRPC_TLS_CLIENT_CA_FILE")
        _pair(cert, key, "gRPC server TLS")
        if cert is None or key is None:
            if client_ca is not None:
                raise ValueError("FACEAUTH_GRPC_TLS_CLIENT_CA_FILE needs FACEAUTH_GRPC_TLS_CERT_FILE and "
                                 "FACEAUTH_GRPC_TLS_KEY_FILE: client certificates are checked only over TLS")
            return None
        return cls(cert, key, client_ca)

    @property
    def mutual(self) -> bool:
        return self.client_ca_file is not None

    def _files(self) -> tuple[Path, ...]:
        return (self.cert_file, self.key_file) + ((self.client_ca_file,) if self.client_ca_file else ())

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        pair = [(self.key_file.read_bytes(), self.cert_file.read_bytes())]
        ca = self.client_ca_file.read_bytes() if self.client_ca_file is not None else None
        return grpc.ssl_server_certificate_configuration(pair, root_certificates=ca)

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials that re-read the files when one of them changes (checked per new connection)."""
        lock = threading.Lock()
        seen = [self._stamp()]
        initial = self._configuration()

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            with lock:
                try:
                    stamp = self._stamp()
                    if stamp == seen[0]:
                        return None
                    configuration = self._configuration()
                except (OSError, ValueError):
                    log.exception("could not reload the gRPC TLS files; keeping the current ones")
                    return None
                seen[0] = stamp
                log.info("reloaded the gRPC TLS certificate")
                return configuration

        return grpc.dynamic_ssl_server_credentials(initial, fetch, require_client_authentication=self.mutual)

    def _stamp(self) -> tuple[tuple[int, int], ...]:
        # A Secret volume swaps a symlink to a new folder: resolve it, so the new files are seen.
        return tuple((path.stat().st_mtime_ns, path.resolve().stat().st_ino) for path in self._files())


@dataclass(frozen=True)
class ClientTls:
    """What auth verifies the model servers with, and its own certificate for mutual TLS."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def from_env(cls) -> ClientTls | None:
        ca = _path("FACEAUTH_GRPC_TLS_CA_FILE")
        cert, key = _path("FACEAUTH_GRPC_TLS_CERT_FILE"), _path("FACEAUTH_GRPC_TLS_KEY_FILE")
        _pair(cert, key, "gRPC client TLS")
        if ca is None:
            if cert is not None:
                raise ValueError("FACEAUTH_GRPC_TLS_CERT_FILE needs FACEAUTH_GRPC_TLS_CA_FILE: auth must verify "
                                 "the model servers it presents its certificate to")
            return None
        return cls(ca, cert, key)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_file.read_bytes(),
            private_key=self.key_file.read_bytes() if self.key_file is not None else None,
            certificate_chain=self.cert_file.read_bytes() if self.cert_file is not None else None)
