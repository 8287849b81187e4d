"""One small storage API over local disk, memory and object stores (S3, Azure Blob, GCS).

Everything above this module (log reading, commits, Parquet I/O) speaks paths relative to a table
root and never touches fsspec directly. The one operation the Delta protocol's correctness rests on
is an atomic put-if-absent of a commit file; fsspec's generic create modes are not atomic on every
backend (local and memory are check-then-write), so :meth:`Storage.put_if_absent` implements it per
backend:

* local disk: write a unique temp file in the same directory, fsync, ``os.link`` it to the final name
  (atomic, fails if the name exists), unlink the temp file. Readers never see a partial commit.
* memory: a process-wide lock around check-and-set.
* S3 / Azure / GCS: the service's conditional create (``If-None-Match: *``, ``overwrite=False``,
  ``ifGenerationMatch=0``) through ``pipe_file(mode="create")``. After a conflict or an ambiguous
  error the object is read back: if it holds exactly our bytes we won (the transport retried a request
  that had already succeeded). Writers should therefore put something unique (a transaction id) in
  each commit so that two writers never write identical bytes.

Storage options may be given either as fsspec keyword arguments (``key``, ``endpoint_url``,
``connection_string``...) or with the delta-rs / object_store names (``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL``, ``AZURE_STORAGE_ACCOUNT_KEY``...), so the same dict works with ``deltalake``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

# gcsfs >= 2026.10 otherwise returns a class that probes gRPC for ~60 s per call against emulators.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import fsspec
import pyarrow.fs as pafs

from lakehouse.errors import InvalidArgumentError

__all__ = ["FileInfo", "Storage"]

_SCHEME_KIND = {
    "file": "local",
    "memory": "memory",
    "s3": "s3",
    "s3a": "s3",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "gs": "gcs",
    "gcs": "gcs",
}
_CANONICAL_SCHEME = {"local": "file", "memory": "memory", "s3": "s3", "azure": "az", "gcs": "gs"}
_FSSPEC_PROTOCOL = {"local": "file", "memory": "memory", "s3": "s3", "azure": "az", "gcs": "gs"}

_MEMORY_LOCK = threading.Lock()
_ASYNC_CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One listed file: ``path`` as given or relative to the table root, size in bytes, mtime in ms."""

    path: str
    size: int
    modification_time: int


@dataclass(frozen=True, slots=True)
class _Location:
    kind: str  # local | memory | s3 | azure | gcs
    fs_path: str  # path inside the fsspec filesystem, no trailing slash
    options: dict[str, str]  # options implied by the URI itself (e.g. abfss account name)


def _parse_uri(uri: str) -> _Location:
    """Split a URI (or local path) into backend kind and fsspec-internal path."""
    if "://" not in uri:
        if uri.startswith("file:"):  # file:/abs/path
            uri = uri[len("file:") :]
        if not uri:
            raise InvalidArgumentError(
                "Empty table location; pass a path or a URI like s3://bucket/t."
            )
        return _Location("local", _norm_local(os.path.abspath(os.path.expanduser(uri))), {})
    scheme, rest = uri.split("://", 1)
    kind = _SCHEME_KIND.get(scheme.lower())
    if kind is None:
        supported = ", ".join(f"{s}://" for s in _SCHEME_KIND)
        raise InvalidArgumentError(
            f"Unsupported URI scheme {scheme!r} in {uri!r}. Use a local path or one of: {supported}."
        )
    if kind == "local":
        if not rest.startswith("/"):  # file://host/path: only an empty host or localhost is local
            host, _, tail = rest.partition("/")
            if host not in ("", "localhost"):
                raise InvalidArgumentError(
                    f"file:// URI {uri!r} names a remote host; use file:///path."
                )
            rest = "/" + tail
        return _Location("local", _norm_local(rest), {})
    rest = rest.strip("/")
    if kind == "memory":
        return _Location("memory", "/" + rest if rest else "", {})
    options: dict[str, str] = {}
    if kind == "azure":
        split = urlsplit(f"{scheme}://{rest}")
        if "@" in split.netloc:  # abfss://container@account.dfs.core.windows.net/path
            container, host = split.netloc.split("@", 1)
            options["account_name"] = host.split(".", 1)[0]
            rest = (container + split.path).strip("/")
    if not rest:
        raise InvalidArgumentError(
            f"URI {uri!r} has no bucket/container; use {scheme}://bucket/path."
        )
    return _Location(kind, rest, options)


def _norm_local(path: str) -> str:
    path = os.path.normpath(path).replace(os.sep, "/")
    return path if path == "/" else path.rstrip("/")


def _mtime_ms(info: Mapping[str, Any]) -> int:
    """Modification time in ms from whatever key the fsspec backend uses."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created", "timeCreated"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime):
            return int(value.timestamp() * 1000)
        if isinstance(value, int | float):
            return int(value * 1000)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    return 0


class Storage:
    """A table root on one backend. Cheap to create: fsspec caches the filesystem instances."""

    __slots__ = ("_fs_root", "fs", "kind", "root", "storage_options")

    root: str
    storage_options: dict[str, str]
    fs: fsspec.AbstractFileSystem
    kind: str

    def __init__(self, root: str, storage_options: Mapping[str, str] | None = None) -> None:
        loc = _parse_uri(root)
        self.kind = loc.kind
        self._fs_root = loc.fs_path
        shown = loc.fs_path.lstrip("/") if loc.kind == "memory" else loc.fs_path
        self.root = f"{_CANONICAL_SCHEME[loc.kind]}://{shown}"
        self.storage_options = {**loc.options, **dict(storage_options or {})}
        self.fs = _filesystem(loc.kind, self.storage_options)

    @classmethod
    def for_uri(cls, uri: str, storage_options: Mapping[str, str] | None = None) -> Storage:
        """Storage rooted at ``uri`` (local path, file://, memory://, s3://, az://, abfss://, gs://)."""
        return cls(uri, storage_options)

    def __repr__(self) -> str:
        return f"Storage({self.root!r})"

    # ----------------------------------------------------------------------------------- paths
    def to_fs_path(self, path: str) -> str:
        """Map a root-relative path (URL-decoded) or an absolute URI/local path to the fs path."""
        if "://" in path or (self.kind == "local" and (path.startswith(("/", "file:")))):
            loc = _parse_uri(path)
            if loc.kind != self.kind:
                raise InvalidArgumentError(
                    f"Path {path!r} is on a different storage backend than the table root {self.root!r}."
                )
            return loc.fs_path
        rel = path.strip("/")
        if not rel:
            return self._fs_root
        return f"{self._fs_root.rstrip('/')}/{rel}"

    def _rel(self, fs_path: str) -> str:
        prefix = self._fs_root.rstrip("/") + "/"
        if fs_path.startswith(prefix):
            return fs_path[len(prefix) :]
        if self.kind == "memory" and not fs_path.startswith("/"):
            fs_path = "/" + fs_path
            if fs_path.startswith(prefix):
                return fs_path[len(prefix) :]
        return f"{_CANONICAL_SCHEME[self.kind]}://{fs_path.lstrip('/') if self.kind != 'local' else fs_path}"

    # --------------------------------------------------------------------------------- listing
    def list_dir(self, rel_dir: str, start_after: str | None = None) -> list[FileInfo]:
        """Files directly under ``rel_dir`` sorted by path; ``[]`` if it does not exist."""
        fs_dir = self.to_fs_path(rel_dir)
        out: list[FileInfo]
        if self.kind == "local":
            out = []
            try:
                it = os.scandir(fs_dir)
            except (FileNotFoundError, NotADirectoryError):
                return []
            skip_before = None
            if start_after is not None and start_after.startswith(rel_dir.strip("/") + "/"):
                skip_before = start_after.rsplit("/", 1)[-1]
            with it:
                for entry in it:
                    if skip_before is not None and entry.name <= skip_before:
                        continue  # cheap name filter before the stat() call
                    # a file may vanish between listing and stat (e.g. a commit's temp file)
                    try:
                        if not entry.is_file():
                            continue
                        st = entry.stat()
                    except FileNotFoundError:
                        continue
                    out.append(FileInfo(self._rel(f"{fs_dir}/{entry.name}"), st.st_size,
                                        st.st_mtime_ns // 1_000_000))
        else:
            self.fs.invalidate_cache(fs_dir)
            try:
                entries = self.fs.ls(fs_dir, detail=True)
            except FileNotFoundError:
                return []
            out = [
                FileInfo(self._rel(e["name"].rstrip("/")), int(e.get("size") or 0), _mtime_ms(e))
                for e in entries
                if e.get("type") == "file"
            ]
        if start_after is not None:
            out = [f for f in out if f.path > start_after]
        out.sort(key=lambda f: f.path)
        return out

    def list_recursive(self, rel_dir: str = "") -> list[FileInfo]:
        """Every file below ``rel_dir`` (recursively), sorted by path; ``[]`` if it does not exist."""
        fs_dir = self.to_fs_path(rel_dir)
        self.fs.invalidate_cache(fs_dir)
        try:
            found = cast(dict[str, dict[str, Any]], self.fs.find(fs_dir, detail=True))
        except FileNotFoundError:
            return []
        out = [
            FileInfo(self._rel(name), int(e.get("size") or 0), _mtime_ms(e))
            for name, e in found.items()
            if e.get("type") == "file" and name.rstrip("/") != fs_dir
        ]
        out.sort(key=lambda f: f.path)
        return out

    # ---------------------------------------------------------------------------------- reading
    def read_bytes(self, path: str) -> bytes:
        """Whole object; ``FileNotFoundError`` if missing."""
        fs_path = self.to_fs_path(path)
        if self.kind == "local":
            with open(fs_path, "rb") as f:
                return f.read()
        return bytes(self.fs.cat_file(fs_path))

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """``length`` bytes starting at ``offset`` (fewer at end of file)."""
        if offset < 0 or length < 0:
            raise InvalidArgumentError(
                f"read_range needs offset >= 0 and length >= 0, got {offset}, {length}."
            )
        fs_path = self.to_fs_path(path)
        if self.kind == "local":
            with open(fs_path, "rb") as f:
                f.seek(offset)
                return f.read(length)
        return bytes(self.fs.cat_file(fs_path, start=offset, end=offset + length))

    def read_many(self, paths: Sequence[str]) -> list[bytes]:
        """Several whole objects, in the order given; concurrent on object stores."""
        fs_paths = [self.to_fs_path(p) for p in paths]
        if not fs_paths:
            return []
        if not getattr(self.fs, "async_impl", False) or len(fs_paths) == 1:
            return [self.read_bytes(p) for p in paths]
        fs = self.fs

        async def _gather() -> list[bytes]:
            sem = asyncio.Semaphore(_ASYNC_CONCURRENCY)

            async def one(p: str) -> bytes:
                async with sem:
                    return bytes(await fs._cat_file(p))

            return list(await asyncio.gather(*(one(p) for p in fs_paths)))

        return cast(list[bytes], fsspec.asyn.sync(fs.loop, _gather))

    def exists(self, path: str) -> bool:
        fs_path = self.to_fs_path(path)
        if self.kind == "local":
            return os.path.exists(fs_path)
        self.fs.invalidate_cache(fs_path)
        return bool(self.fs.exists(fs_path))

    def info(self, path: str) -> FileInfo:
        """Size and mtime of one file; ``FileNotFoundError`` if missing."""
        fs_path = self.to_fs_path(path)
        if self.kind == "local":
            st = os.stat(fs_path)
            return FileInfo(path, st.st_size, st.st_mtime_ns // 1_000_000)
        self.fs.invalidate_cache(fs_path)
        e = self.fs.info(fs_path)
        return FileInfo(path, int(e.get("size") or 0), _mtime_ms(e))

    def open_input(self, path: str) -> BinaryIO:
        """Seekable binary reader (for pyarrow.parquet)."""
        fs_path = self.to_fs_path(path)
        if self.kind == "local":
            return open(fs_path, "rb")
        return cast(BinaryIO, self.fs.open(fs_path, "rb"))

    # ---------------------------------------------------------------------------------- writing
    def write_bytes(self, path: str, data: bytes) -> None:
        """Create or overwrite; on local disk the replace is atomic (temp file + ``os.replace``)."""
        fs_path = self.to_fs_path(path)
        if self.kind == "local":
            tmp = _local_write_temp(fs_path, bytes(data))
            try:
                os.replace(tmp, fs_path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        elif self.kind == "memory":
            with _MEMORY_LOCK:
                self.fs.pipe_file(fs_path, bytes(data))
        else:
            self.fs.pipe_file(fs_path, bytes(data))

    def put_if_absent(self, path: str, data: bytes) -> None:
        """Atomically create ``path`` with ``data``; ``FileExistsError`` if it already exists.

        No partial file is ever visible. On object stores a conflict reported for a request that
        actually succeeded (transport retry) is detected by reading the object back.
        """
        fs_path = self.to_fs_path(path)
        data = bytes(data)
        if self.kind == "local":
            self._local_put_if_absent(fs_path, data)
        elif self.kind == "memory":
            with _MEMORY_LOCK:
                if self.fs.exists(fs_path):
                    raise FileExistsError(f"{self.root}/{path} already exists")
                self.fs.pipe_file(fs_path, data)
        else:
            self._cloud_put_if_absent(fs_path, data, path)

    def open_output(self, path: str) -> BinaryIO:
        """Streaming writer for a new (data) file; parent directories are created as needed."""
        fs_path = self.to_fs_path(path)
        if self.kind == "local":
            os.makedirs(os.path.dirname(fs_path), exist_ok=True)
            return open(fs_path, "wb")
        return cast(BinaryIO, self.fs.open(fs_path, "wb"))

    def delete(self, paths: Iterable[str]) -> None:
        """Delete files; missing ones are ignored. Concurrent/bulk on object stores."""
        fs_paths = [self.to_fs_path(p) for p in paths]
        if not fs_paths:
            return
        if self.kind == "local":
            for p in fs_paths:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)
            return
        if not getattr(self.fs, "async_impl", False):
            for p in fs_paths:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(p)
            return
        fs = self.fs

        async def _gather() -> None:
            sem = asyncio.Semaphore(_ASYNC_CONCURRENCY)

            async def one(p: str) -> None:
                async with sem:
                    with contextlib.suppress(FileNotFoundError):
                        await fs._rm_file(p)

            await asyncio.gather(*(one(p) for p in fs_paths))

        fsspec.asyn.sync(fs.loop, _gather)
        fs.invalidate_cache()

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, Callable[[str], str]]:
        """A pyarrow filesystem for this storage and a function mapping our paths to its paths."""
        if self.kind == "local":
            return pafs.LocalFileSystem(), self.to_fs_path
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs)), self.to_fs_path

    # --------------------------------------------------------------------------------- internals
    def _local_put_if_absent(self, fs_path: str, data: bytes) -> None:
        tmp = _local_write_temp(fs_path, data)
        try:
            try:
                os.link(tmp, fs_path)
            except FileExistsError:
                raise FileExistsError(f"{fs_path} already exists") from None
            except OSError as e:  # filesystem without hard links: exclusive create instead
                if isinstance(e, PermissionError | FileNotFoundError):
                    raise
                _local_exclusive_create(fs_path, data)
                return
            _fsync_dir(os.path.dirname(fs_path))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _cloud_put_if_absent(self, fs_path: str, data: bytes, path: str) -> None:
        try:
            self.fs.pipe_file(fs_path, data, mode="create")
            return
        except (FileNotFoundError, PermissionError):
            raise
        except FileExistsError as e:
            first: BaseException = e
        # Ambiguous: timeout, S3's 409 ConditionalRequestConflict, a transport error...
        except Exception as e:
            first = e
        try:
            current = bytes(self.fs.cat_file(fs_path))
        except FileNotFoundError:
            if isinstance(first, FileExistsError):  # deleted again since; still a conflict
                raise FileExistsError(f"{self.root}/{path} already exists") from first
            raise first from None
        if current == data:
            return  # our own write landed; the error was for a retried request
        raise FileExistsError(f"{self.root}/{path} already exists") from first


def _local_write_temp(fs_path: str, data: bytes) -> str:
    directory, name = os.path.split(fs_path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def _local_exclusive_create(fs_path: str, data: bytes) -> None:
    fd = os.open(fs_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _filesystem(kind: str, storage_options: Mapping[str, str]) -> fsspec.AbstractFileSystem:
    kwargs = fsspec_kwargs(kind, storage_options)
    try:
        return fsspec.filesystem(_FSSPEC_PROTOCOL[kind], **kwargs)
    except ImportError as e:
        extra = EXTRA_FOR_KIND.get(kind, kind)
        raise InvalidArgumentError(
            f"The {kind} backend needs an optional dependency that is not installed ({e}). "
            f"Install it with: pip install 'lakehouse[{extra}]'"
        ) from e
    except (ValueError, TypeError) as e:
        raise InvalidArgumentError(
            f"Cannot set up the {kind} backend from the given storage_options: {e}. "
            "Check the credentials/endpoint options (delta-rs or fsspec names are accepted)."
        ) from e


# ------------------------------------------------------------------------------- storage options
EXTRA_FOR_KIND = {"s3": "s3", "azure": "azure", "gcs": "gcs"}
_AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

# delta-rs / object_store option names (lower-cased) -> fsspec keyword, per backend.
_ALIASES: dict[str, dict[str, str]] = {
    "s3": {
        "aws_access_key_id": "key",
        "access_key_id": "key",
        "aws_secret_access_key": "secret",
        "secret_access_key": "secret",
        "aws_session_token": "token",
        "aws_token": "token",
        "session_token": "token",
        "aws_endpoint_url": "endpoint_url",
        "aws_endpoint": "endpoint_url",
        "endpoint": "endpoint_url",
        "aws_profile": "profile",
        "aws_region": "region_name",
        "aws_default_region": "region_name",
        "region": "region_name",
    },
    "azure": {
        "azure_storage_account_name": "account_name",
        "azure_storage_account": "account_name",
        "azure_storage_account_key": "account_key",
        "azure_storage_access_key": "account_key",
        "azure_storage_master_key": "account_key",
        "access_key": "account_key",
        "master_key": "account_key",
        "azure_storage_connection_string": "connection_string",
        "azure_storage_sas_key": "sas_token",
        "azure_storage_sas_token": "sas_token",
        "sas_key": "sas_token",
        "azure_storage_client_id": "client_id",
        "azure_client_id": "client_id",
        "azure_storage_client_secret": "client_secret",
        "azure_client_secret": "client_secret",
        "azure_storage_tenant_id": "tenant_id",
        "azure_tenant_id": "tenant_id",
        "azure_storage_endpoint": "endpoint",
        "azure_endpoint": "endpoint",
        "azure_storage_use_emulator": "use_emulator",
    },
    "gcs": {
        "google_service_account": "token",
        "google_service_account_path": "token",
        "service_account": "token",
        "service_account_path": "token",
        "google_application_credentials": "token",
        "google_service_account_key": "token_json",
        "service_account_key": "token_json",
        "google_endpoint_url": "endpoint_url",
        "google_endpoint": "endpoint_url",
        "endpoint": "endpoint_url",
        "google_project": "project",
        "google_project_id": "project",
        "project_id": "project",
        "google_skip_signature": "skip_signature",
    },
}
# delta-rs specific switches that mean nothing to fsspec.
_IGNORED = {
    "aws_allow_http",
    "allow_http",
    "aws_s3_allow_unsafe_rename",
    "aws_conditional_put",
    "aws_s3_locking_provider",
    "aws_copy_if_not_exists",
    "azure_allow_http",
    "google_bucket",
    "aws_skip_signature",
    "timeout",
    "azure_storage_allow_http",
}


def _as_bool(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def fsspec_kwargs(kind: str, storage_options: Mapping[str, Any]) -> dict[str, Any]:
    """fsspec keyword arguments for ``kind`` from user storage options (either naming style)."""
    if kind in ("local", "memory"):
        return {k: _as_bool(v) for k, v in storage_options.items()}
    aliases = _ALIASES[kind]
    out: dict[str, Any] = {"use_listings_cache": False}
    for key, value in storage_options.items():
        low = key.lower()
        if low == "aws_skip_signature" and kind == "s3":
            out["anon"] = _as_bool(value) is True
        elif low in aliases:
            out[aliases[low]] = value
        elif low not in _IGNORED:
            out[key] = _as_bool(value)
    if kind == "s3" and "region_name" in out:
        region = out.pop("region_name")
        out["client_kwargs"] = {**out.get("client_kwargs", {}), "region_name": region}
    elif kind == "azure":
        use_emulator = _as_bool(out.pop("use_emulator", False)) is True
        endpoint = out.pop("endpoint", None)
        if use_emulator and endpoint is None:
            endpoint = "http://127.0.0.1:10000/devstoreaccount1"
            out.setdefault("account_name", "devstoreaccount1")
            out.setdefault("account_key", _AZURITE_KEY)
        if endpoint is not None and "connection_string" not in out:
            proto = "http" if str(endpoint).startswith("http://") else "https"
            parts = [
                f"DefaultEndpointsProtocol={proto}",
                f"AccountName={out.get('account_name', '')}",
            ]
            if "account_key" in out:
                parts.append(f"AccountKey={out.pop('account_key')}")
            if "sas_token" in out:
                parts.append(f"SharedAccessSignature={str(out.pop('sas_token')).lstrip('?')}")
            parts.append(f"BlobEndpoint={endpoint}")
            out["connection_string"] = ";".join(parts) + ";"
    elif kind == "gcs":
        if "token_json" in out:
            import json

            out["token"] = json.loads(out.pop("token_json"))
        if _as_bool(out.pop("skip_signature", False)) is True:
            out["token"] = "anon"
    return out
