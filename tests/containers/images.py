"""The images of the test: a Debian base made with debootstrap, lull and lull-dev on it,
Redis and Prometheus from Debian's packages on it. No image registry is needed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.containers.podman import HERE, ROOT, CommandFailed, Podman, run

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# python3-venv: the Dockerfile builds virtual environments; ca-certificates: HTTPS in
# RUN steps (pip brings its own bundle, apt and others use the system's).
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE = f"localhost/lull-test-base:{SUITE}"
LULL = f"localhost/lull-test:{SUITE}"
LULL_DEV = f"localhost/lull-test-dev:{SUITE}"
REDIS = f"localhost/lull-test-redis:{SUITE}"
PROMETHEUS = f"localhost/lull-test-prometheus:{SUITE}"
# Where Debian keeps the local CA certificates an administrator added (update-ca-certificates).
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
DEBOOTSTRAP_TIMEOUT_S = 900
BUILD_TIMEOUT_S = 1200
# Debian's images carry this too: a package installed while an image is built starts no
# service.
POLICY_RC_D = "#!/bin/sh\n# No service starts while an image is built.\nexit 101\n"
# Documentation and translations: not needed in a container, a fifth of the base.
TRIMMED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale")


@dataclass(frozen=True)
class Built:
    """An image and what it took."""

    image: str
    size_bytes: int
    reused: bool = False


def build_base(podman: Podman, *, reuse: bool) -> Built:
    """debootstrap a minimal bookworm with python3 and import it as BASE."""
    if reuse and podman.exists(BASE):
        return Built(BASE, podman.image_size_bytes(BASE), reused=True)
    with tempfile.TemporaryDirectory(prefix="lull-base-", dir="/var/tmp") as work:
        root = Path(work) / "root"
        command = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            SUITE,
            str(root),
            MIRROR,
        ]
        run(command, DEBOOTSTRAP_TIMEOUT_S)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        for trimmed in TRIMMED:
            shutil.rmtree(root / trimmed, ignore_errors=True)
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text(POLICY_RC_D, encoding="utf-8")
        policy.chmod(0o755)
        tar = subprocess.run(
            ["tar", "--numeric-owner", "-C", str(root), "-c", "."],
            capture_output=True,
            check=True,
            timeout=DEBOOTSTRAP_TIMEOUT_S,
        )
        podman.run(["import", "--change", 'CMD ["/bin/bash"]', "-", BASE], 600, stdin=tar.stdout)
    return Built(BASE, podman.image_size_bytes(BASE))


def extra_ca_certs() -> str:
    """The host's added CA certificates (PEM), for builds behind a re-signing proxy; or ''."""
    if not LOCAL_CA_DIR.is_dir():
        return ""
    return "".join(p.read_text(encoding="utf-8") for p in sorted(LOCAL_CA_DIR.glob("*.crt")))


def build_lull(podman: Podman) -> tuple[Built, Built]:
    """The production image (the Dockerfile's default target) and the dev image."""
    args = ["--build-arg", f"BASE_IMAGE={BASE}"]
    certificates = extra_ca_certs()
    if certificates:
        args += ["--build-arg", f"EXTRA_CA_CERTS={certificates}"]
    dockerfile = str(ROOT / "Dockerfile")
    podman.run(["build", *args, "-f", dockerfile, "-t", LULL, str(ROOT)], BUILD_TIMEOUT_S)
    podman.run(
        ["build", *args, "--target", "dev", "-f", dockerfile, "-t", LULL_DEV, str(ROOT)],
        BUILD_TIMEOUT_S,
    )
    return Built(LULL, podman.image_size_bytes(LULL)), Built(
        LULL_DEV, podman.image_size_bytes(LULL_DEV)
    )


def build_support(podman: Podman) -> list[Built]:
    """Redis and Prometheus from Debian's packages, on the base."""
    built = []
    for image, containerfile in ((REDIS, "redis"), (PROMETHEUS, "prometheus")):
        podman.run(
            [
                "build",
                "--build-arg",
                f"BASE_IMAGE={BASE}",
                "-f",
                str(HERE / f"{containerfile}.Containerfile"),
                "-t",
                image,
                str(HERE),
            ],
            BUILD_TIMEOUT_S,
        )
        built.append(Built(image, podman.image_size_bytes(image)))
    return built


def remove_test_images(podman: Podman) -> None:
    """Forget every image of this test (`--fresh`), so the run starts from nothing."""
    for image in (LULL, LULL_DEV, REDIS, PROMETHEUS, BASE):
        try:
            podman.run(["rmi", "--force", image], 120)
        except CommandFailed:
            continue  # not there
