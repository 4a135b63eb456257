"""Mutual TLS between auth and the model servers (faceauth.grpc.tls), with real certificates made here.

A detector with mTLS refuses plaintext, a TLS client without a certificate and one whose certificate
another CA signed, and serves the right one; its plaintext health port answers health checks (kubelet's
gRPC probes) and nothing else. Then the auth service's whole pipeline (enrol, login) runs over mTLS to
real detector and embedder processes configured through the environment, as the chart configures them.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from faceauth.grpc.batcher import BatchSettings
from faceauth.grpc.client import DetectorClient, RetryPolicy
from faceauth.grpc.launch import ServiceProcess, health_status
from faceauth.grpc.metrics import Metrics
from faceauth.grpc.server import ModelServer
from faceauth.grpc.settings import ServingSettings
from faceauth.grpc.tls import ClientTls, ServerTls
from faceauth.v1 import detector_pb2, detector_pb2_grpc
from faceauth_detector.servicer import DetectorServicer

NO_RETRY = RetryPolicy(max_attempts=2, initial_backoff=0.01)


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    folder: Path

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.crt"

    def issue(self, name: str, *, server: bool) -> tuple[Path, Path]:
        """(tls.crt, tls.key) of a leaf for ``name``: a server certificate for localhost, or a client one."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(self.certificate.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        cert_file, key_file = self.folder / f"{name}.crt", self.folder / f"{name}.key"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_file, key_file


def make_authority(folder: Path, name: str) -> Authority:
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                content_commitment=False, key_encipherment=False,
                                                data_encipherment=False, key_agreement=False, encipher_only=False,
                                                decipher_only=False), critical=True)
                   .sign(key, hashes.SHA256()))
    authority = Authority(key, certificate, folder)
    authority.ca_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return authority


@dataclass(frozen=True)
class Pki:
    server: ServerTls
    client: ClientTls  # auth's certificate, from the right CA
    no_certificate: ClientTls  # TLS, trusts the server, presents nothing
    foreign: ClientTls  # trusts the server, presents a certificate another CA signed


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ours, theirs = make_authority(folder / "ours", "faceauth-ca"), make_authority(folder / "theirs", "other-ca")
    server_cert, server_key = ours.issue("detector", server=True)
    client_cert, client_key = ours.issue("auth", server=False)
    foreign_cert, foreign_key = theirs.issue("intruder", server=False)
    return Pki(server=ServerTls(server_cert, server_key, ours.ca_file),
               client=ClientTls(ours.ca_file, client_cert, client_key),
               no_certificate=ClientTls(ours.ca_file),
               foreign=ClientTls(ours.ca_file, foreign_cert, foreign_key))


@contextmanager
def tls_detector(model_dir: Path, tls: ServerTls) -> Iterator[ModelServer]:
    settings = ServingSettings(model_dir=model_dir, port=0, metrics_port=0,
                               batching=BatchSettings(max_batch_size=4, max_queue_delay=0.0, max_queue=16),
                               bind_address="127.0.0.1", metrics_address="127.0.0.1", grace_seconds=2,
                               tls=tls, health_port=0)
    metrics = Metrics()
    server = ModelServer(DetectorServicer(settings, metrics), settings, metrics)
    server.start()
    try:
        server.load()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def detector_server(model_dir: Path, pki: Pki) -> Iterator[ModelServer]:
    with tls_detector(model_dir, pki.server) as server:
        yield server


@pytest.fixture(scope="module")
def face(lfw: Path) -> bytes:
    return (lfw / "images" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg").read_bytes()


def test_mutual_tls_serves_a_client_with_a_certificate_of_the_right_ca(detector_server: ModelServer, pki: Pki,
                                                                      face: bytes) -> None:
    for host in ("localhost", "127.0.0.1"):  # the certificate names both; the host name is checked
        client = DetectorClient(f"{host}:{detector_server.port}", timeout=10, tls=pki.client)
        assert len(client.detect(face).faces) == 1


@pytest.mark.parametrize("who", ["plaintext", "no_certificate", "foreign"])
def test_mutual_tls_refuses_clients_without_the_right_certificate(detector_server: ModelServer, pki: Pki,
                                                                  face: bytes, who: str) -> None:
    tls = None if who == "plaintext" else getattr(pki, who)
    client = DetectorClient(f"localhost:{detector_server.port}", timeout=3, retry=NO_RETRY, tls=tls)
    with pytest.raises(grpc.RpcError) as refused:
        client.detect(face)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake failed: no call ran
    # Health checks on the TLS port need the certificate too.
    assert health_status(f"127.0.0.1:{detector_server.port}") == health_pb2.HealthCheckResponse.UNKNOWN


def test_a_client_does_not_trust_a_server_of_another_ca(model_dir: Path, pki: Pki, face: bytes,
                                                        tmp_path: Path) -> None:
    theirs = make_authority(tmp_path / "theirs", "other-ca")
    cert, key = theirs.issue("impostor-detector", server=True)
    with tls_detector(model_dir, ServerTls(cert, key, pki.server.client_ca_file)) as impostor:
        client = DetectorClient(f"localhost:{impostor.port}", timeout=3, retry=NO_RETRY, tls=pki.client)
        with pytest.raises(grpc.RpcError) as refused:
            client.detect(face)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_plaintext_health_port_answers_health_checks_only(detector_server: ModelServer, face: bytes) -> None:
    """What kubelet's gRPC probe reaches: SERVING without a certificate, and no model service there."""
    health = f"127.0.0.1:{detector_server.health_port}"
    assert health_status(health) == health_pb2.HealthCheckResponse.SERVING
    assert health_status(health, "faceauth.v1.DetectorService") == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(health) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            detector_pb2_grpc.DetectorServiceStub(channel).Detect(detector_pb2.DetectRequest(image=face), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.RpcError):
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="unknown"), timeout=5)


def test_the_health_port_follows_the_servers_status(model_dir: Path, pki: Pki) -> None:
    """NOT_SERVING before the model is loaded and once draining starts, as the gRPC port says."""
    settings = ServingSettings(model_dir=model_dir, port=0, metrics_port=0,
                               batching=BatchSettings(max_batch_size=1, max_queue_delay=0.0, max_queue=4),
                               bind_address="127.0.0.1", metrics_address="127.0.0.1", grace_seconds=1,
                               tls=pki.server, health_port=0)
    metrics = Metrics()
    server = ModelServer(DetectorServicer(settings, metrics), settings, metrics)
    server.start()
    try:
        health = f"127.0.0.1:{server.health_port}"
        assert health_status(health) == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        server.stop()
    assert health_status(health) == health_pb2.HealthCheckResponse.UNKNOWN  # stopped: nothing answers


def test_server_certificates_are_reloaded_when_the_files_change(model_dir: Path, pki: Pki, face: bytes,
                                                                tmp_path: Path) -> None:
    """cert-manager renews a Secret in place: new connections get the new certificate without a restart."""
    first = make_authority(tmp_path / "first", "first-ca")
    second = make_authority(tmp_path / "second", "second-ca")
    live = tmp_path / "live"
    live.mkdir()
    cert, key = live / "tls.crt", live / "tls.key"
    old_cert, old_key = first.issue("detector", server=True)
    cert.write_bytes(old_cert.read_bytes())
    key.write_bytes(old_key.read_bytes())
    with tls_detector(model_dir, ServerTls(cert, key, pki.server.client_ca_file)) as server:
        def trusting(authority: Authority) -> DetectorClient:
            tls = ClientTls(authority.ca_file, pki.client.cert_file, pki.client.key_file)
            return DetectorClient(f"localhost:{server.port}", timeout=5, retry=NO_RETRY, tls=tls)

        assert len(trusting(first).detect(face).faces) == 1
        new_cert, new_key = second.issue("detector", server=True)
        time.sleep(0.01)  # a later modification time
        key.write_bytes(new_key.read_bytes())
        cert.write_bytes(new_cert.read_bytes())
        assert len(trusting(second).detect(face).faces) == 1


@pytest.mark.parametrize(("env", "message"), [
    ({"FACEAUTH_GRPC_TLS_CERT_FILE": "/x.crt"}, "go together"),
    ({"FACEAUTH_GRPC_TLS_CLIENT_CA_FILE": "/ca.crt"}, "needs FACEAUTH_GRPC_TLS_CERT_FILE"),
])
def test_incomplete_server_tls_settings_stop_start_up(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                      message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        ServingSettings.from_env(default_port=1, default_metrics_port=2)


def test_tls_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from faceauth_auth.config import Settings

    assert ServingSettings.from_env(default_port=1, default_metrics_port=2).tls is None
    assert Settings.from_env().grpc_tls is None
    monkeypatch.setenv("FACEAUTH_GRPC_TLS_CERT_FILE", "/tls/tls.crt")
    monkeypatch.setenv("FACEAUTH_GRPC_TLS_KEY_FILE", "/tls/tls.key")
    monkeypatch.setenv("FACEAUTH_GRPC_TLS_CLIENT_CA_FILE", "/tls/ca.crt")
    monkeypatch.setenv("FACEAUTH_GRPC_HEALTH_PORT", "50061")
    serving = ServingSettings.from_env(default_port=1, default_metrics_port=2)
    assert serving.tls == ServerTls(Path("/tls/tls.crt"), Path("/tls/tls.key"), Path("/tls/ca.crt"))
    assert serving.tls.mutual and serving.health_port == 50061
    with pytest.raises(ValueError, match="needs FACEAUTH_GRPC_TLS_CA_FILE"):
        Settings.from_env()  # auth with a certificate but nothing to verify the servers with
    monkeypatch.setenv("FACEAUTH_GRPC_TLS_CA_FILE", "/tls/ca.crt")
    assert Settings.from_env().grpc_tls == ClientTls(Path("/tls/ca.crt"), Path("/tls/tls.crt"), Path("/tls/tls.key"))


def test_auth_pipeline_end_to_end_over_mutual_tls(model_dir: Path, lfw: Path, tmp_path: Path) -> None:
    """Real detector and embedder processes with mTLS from their environment; auth enrols and logs a user in
    through them; an auth without its client certificate gets 503 from the same servers."""
    from faceauth_auth import apikeys
    from faceauth_auth.app import create_app
    from faceauth_auth.config import Settings
    from faceauth_auth.templatecrypto import generate_key_file
    from faceauth_auth.tokens import write_key_pair

    ca = make_authority(tmp_path / "ca", "faceauth-ca")
    auth_cert, auth_key = ca.issue("auth", server=False)
    base = {"FACEAUTH_MODEL_DIR": str(model_dir), "PYTHONPATH": os.pathsep.join(sys.path),
            "TF_CPP_MIN_LOG_LEVEL": "2", "FACEAUTH_INTRA_OP_THREADS": "2", "FACEAUTH_EMBEDDER_LEGACY_MODELS": ""}
    processes = []
    for module in ("faceauth_detector", "faceauth_embedder"):
        cert, key = ca.issue(module, server=True)
        env = {**base, "FACEAUTH_GRPC_TLS_CERT_FILE": str(cert), "FACEAUTH_GRPC_TLS_KEY_FILE": str(key),
               "FACEAUTH_GRPC_TLS_CLIENT_CA_FILE": str(ca.ca_file)}
        processes.append(ServiceProcess(module, env, (tmp_path / f"{module}.log").open("wb")))
    detector, embedder = processes
    write_key_pair(tmp_path / "jwt", "ES256")
    generate_key_file(tmp_path / "template.key")
    generate_key_file(tmp_path / "pepper")
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(ServiceProcess.start, processes))
        assert detector.health_port is not None and embedder.health_port is not None
        settings = Settings(database_url=f"sqlite:///{tmp_path}/faceauth.db",
                            detector_target=f"localhost:{detector.port}", embedder_target=f"localhost:{embedder.port}",
                            jwt_current_key_file=tmp_path / "jwt" / "current.pem",
                            jwt_next_key_file=tmp_path / "jwt" / "next.pem",
                            template_key_file=tmp_path / "template.key", api_key_pepper_file=tmp_path / "pepper",
                            grpc_timeout=10.0, grpc_tls=ClientTls(ca.ca_file, auth_cert, auth_key))
        app = create_app(settings)
        with app.extensions["faceauth"].db.transaction() as session:
            _, api_key = apikeys.create(session, "mtls",
                                        hasher=apikeys.KeyHasher(apikeys.load_pepper(tmp_path / "pepper")))
        headers = {"Authorization": f"Bearer {api_key}"}
        http = app.test_client()

        def photo(index: int) -> tuple[object, str]:
            import io
            return io.BytesIO((lfw / "images" / "Tony_Blair" / f"Tony_Blair_{index:04d}.jpg").read_bytes()), "a.jpg"

        assert http.get("/readyz").status_code == 200
        enrolled = http.post("/auth/face-register", headers=headers, data={"user_id": "alice", "image": photo(2)})
        assert enrolled.status_code == 201, enrolled.get_json()
        login = http.post("/auth/face-login", headers=headers, data={"user_id": "alice", "image": photo(4)})
        assert login.status_code == 200 and login.get_json()["token_type"] == "Bearer", login.get_json()

        # The same auth without its client certificate: the servers refuse the handshake, auth answers 503.
        from dataclasses import replace
        without = create_app(replace(settings, grpc_tls=ClientTls(ca.ca_file), grpc_timeout=2.0), prepare=False)
        refused = without.test_client().post("/auth/face-login", headers=headers,
                                             data={"user_id": "alice", "image": photo(4)})
        assert refused.status_code == 503, refused.get_json()
    finally:
        for process in processes:
            process.stop()
