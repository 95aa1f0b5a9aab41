# -*- coding: utf-8 -*-
# Copyright: runlocalai contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A large artifact of an MLflow run (a multi-GB GGUF file is normal), fetched through the tracking
server into a content-addressed cache on the host: ``<cache_dir>/<sha256><extension>``.

Plain Python, standard library only (urllib, hashlib, os): the module mlflow_artifact_cache runs it
on serving hosts, which have no ``requests``.

- A cached file of the right size (and, with verify_existing, the right SHA-256) is used as it is:
  nothing is requested, nothing changes.
- The download goes through the server's artifact proxy, ``GET {tracking_uri}/get-artifact?path=...&run_uuid=...``
  (MLflow serves it with Flask's send_file, which answers Range requests with 206), in 1 MiB chunks
  to ``<final>.part``, hashed on the way.
- Resume: a ``.part`` left by an earlier run (or by a cut connection in this one) is continued with
  ``Range: bytes=<size>-``: 206 appends to it (its bytes are hashed first), 200 starts over, 416 takes
  the part as complete when its size is the artifact's size, else starts over. A cut connection keeps
  the part and is retried ``retries`` times; after that the error says how many bytes are kept.
- Before bytes are written, the free space of cache_dir (os.statvfs) must hold the bytes still to come
  plus a margin; otherwise nothing is written and the error names cache_dir, the needed and free MiB.
- The SHA-256 is checked after the last byte: a mismatch deletes the part (nothing stays in the cache),
  a match is fsynced, chmodded and renamed atomically to the final name.
- At most ``keep`` cached files stay (the newest by modification time; a file used again is touched), never
  the one just fetched nor one whose SHA-256 is in ``protect``; partial downloads of other files go too.
- Credentials become a basic or bearer Authorization header, never sent on a redirect, never in a message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import errno
import fcntl
import hashlib
import http.client
import json
import os
import re
import ssl
import time
import urllib.error
import urllib.request
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from ..common.errors import InputError, MlopsError
from ..common.files import CHUNK, file_sha256, hash_file
from .registry import RegistryError, check_connection

ARTIFACT_ENDPOINT = "/get-artifact"
MIB = float(1 << 20)
DISK_MARGIN = 64 << 20
PART_SUFFIX = ".part"
LOCK_NAME = ".runlocalai-artifact-cache.lock"
USER_AGENT = "runlocalai.mlops.mlflow_artifact_cache"

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
EXTENSION_RE = re.compile(r"^\.[A-Za-z0-9]{1,16}$")
CACHED_RE = re.compile(r"^([0-9a-f]{64})(\.[A-Za-z0-9]{1,16})?$")
PART_RE = re.compile(r"^([0-9a-f]{64})(\.[A-Za-z0-9]{1,16})?\.part$")
TRANSIENT_STATUS = (502, 503, 504)


class ArtifactError(MlopsError):
    """The artifact could not be fetched; the message says what is wrong and what was kept."""


class _Transient(Exception):
    """A failure worth retrying: no HTTP answer, a gateway error, a connection cut mid-body."""

    def __init__(self, reason, cut=False):
        super(_Transient, self).__init__(reason)
        self.reason = reason
        self.cut = cut


# -- inputs ----------------------------------------------------------------------------------------
def check_sha256(value, param="sha256"):
    """The digest in lower case; InputError naming param when it is not 64 hex characters."""
    text = str(value if value is not None else "").strip().lower()
    if not SHA256_RE.match(text):
        raise InputError("%s: %r is not a SHA-256 digest (64 hexadecimal characters)" % (param, value))
    return text


def extension_of(artifact_path):
    """The artifact's file extension as the cache keeps it ('.gguf'); '' when it has none usable."""
    ext = os.path.splitext(artifact_path.rstrip("/").rsplit("/", 1)[-1])[1]
    return ext if EXTENSION_RE.match(ext) else ""


def cache_name(sha256, artifact_path):
    """<sha256><extension>: the cached file's name."""
    return check_sha256(sha256) + extension_of(artifact_path)


def check_artifact_path(artifact_path):
    path = str(artifact_path or "").strip()
    if not path or path.startswith("/") or path.endswith("/") or ".." in path.split("/"):
        raise InputError("artifact_path: %r is not the relative path of a file among the run's artifacts, e.g. "
                         "model/SmolLM2.gguf" % (artifact_path,))
    return path


def redacted(url):
    """The URL without user:password@ (for messages)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, parts.fragment))


def mib(count):
    return "%.1f MiB" % (count / MIB)


# -- the cache -------------------------------------------------------------------------------------
def free_bytes(directory):
    """Bytes an unprivileged user may still write on directory's file system."""
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def _existing_dir(path):
    """path, or its nearest ancestor that exists (check mode: a cache_dir an earlier task creates)."""
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_disk(cache_dir, remaining, margin=DISK_MARGIN):
    """Raise ArtifactError when cache_dir's file system lacks remaining + margin bytes. Returns the numbers."""
    free = free_bytes(_existing_dir(cache_dir))
    needed = max(0, int(remaining)) + int(margin)
    disk = {"checked": True, "free_bytes": free, "needed_bytes": needed, "remaining_bytes": max(0, int(remaining))}
    if free < needed:
        raise ArtifactError("cache_dir: not enough free space in %s for the download: %s needed (%s still to fetch plus a "
                            "margin of %s), %s free; nothing was written" % (cache_dir, mib(needed), mib(remaining),
                                                                             mib(margin), mib(free)))
    return disk


def cache_entries(cache_dir):
    """The cache's files: dict(name, path, sha256, part, mtime, size), only names the cache gives."""
    entries = []
    try:
        names = os.listdir(cache_dir)
    except OSError:
        return entries
    for name in names:
        match = CACHED_RE.match(name) or PART_RE.match(name)
        path = os.path.join(cache_dir, name)
        if not match or not os.path.isfile(path) or os.path.islink(path):
            continue
        stat = os.stat(path)
        entries.append({"name": name, "path": path, "sha256": match.group(1), "part": name.endswith(PART_SUFFIX),
                        "mtime": stat.st_mtime, "size": stat.st_size})
    return entries


def prune(cache_dir, keep, current, protect=(), check_mode=False, current_is_new=False):
    """Remove the cached files beyond the newest ``keep`` (0: keep every file) and the partial downloads
    of other files; never the current one nor a protected one. Returns the removed (or, in check mode,
    to be removed) paths, oldest first."""
    if not keep:
        return []
    protected = set(protect) | {current}
    entries = cache_entries(cache_dir)
    files = [e for e in entries if not e["part"]]
    kept = set(e["name"] for e in files if e["sha256"] in protected)
    # check mode: the file that would be fetched takes a place too
    places = keep - (1 if current_is_new and not any(e["sha256"] == current for e in files) else 0)
    for entry in sorted(files, key=lambda e: (e["mtime"], e["name"]), reverse=True):
        if len(kept) >= places:
            break
        kept.add(entry["name"])
    doomed = [e for e in files if e["name"] not in kept]
    doomed += [e for e in entries if e["part"] and e["sha256"] not in protected]
    removed = []
    for entry in sorted(doomed, key=lambda e: (e["mtime"], e["name"])):
        if not check_mode:
            try:
                os.unlink(entry["path"])
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise ArtifactError("cache_dir: cannot remove %s: %s" % (entry["path"], exc))
        removed.append(entry["path"])
    return removed


class _Lock:
    """An exclusive lock on the cache directory (one fetch or prune at a time; a second waits)."""

    def __init__(self, cache_dir):
        self.path = os.path.join(cache_dir, LOCK_NAME)
        self.fd = None

    def __enter__(self):
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ArtifactError("cache_dir: cannot create the lock file %s: %s" % (self.path, exc))
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


# -- HTTP ------------------------------------------------------------------------------------------
def _content_range(value):
    """'bytes START-END/TOTAL' -> (START, TOTAL or None); 'bytes */TOTAL' -> (None, TOTAL); junk -> (None, None)."""
    match = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", value or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _length(value):
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _detail(body, fallback=""):
    """The server's message in an error body (MLflow's JSON message, else the text), about 300 characters."""
    text = (body or b"").decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("message"):
            text = str(data["message"])
    except ValueError:
        pass
    text = re.sub(r"\s+", " ", text) or fallback
    return text if len(text) <= 300 else text[:297] + "..."


class ArtifactSource:
    """One artifact of one run on a tracking server: opens GET requests (with a Range) on its proxy URL."""

    def __init__(self, tracking_uri, run_id, artifact_path, username=None, password=None, token=None, validate_certs=True,
                 ca_path=None, timeout=30):
        parts = urlsplit(tracking_uri or "")
        if parts.username is not None and not (username or token):
            # https://user:password@host: urllib does not send those, so they become the basic auth
            username, password = unquote(parts.username), unquote(parts.password or "")
        try:
            self.base = redacted(check_connection(tracking_uri, username, password, token))
        except RegistryError as exc:
            raise InputError(str(exc).replace(tracking_uri or "", redacted(tracking_uri or "")))
        if not run_id or not re.match(r"^[A-Za-z0-9_\-]+$", str(run_id)):
            raise InputError("run_id: %r is not an MLflow run id" % (run_id,))
        self.run_id = str(run_id)
        self.artifact_path = check_artifact_path(artifact_path)
        self.username = username or None
        self.token = token or None
        self.url = "%s%s?%s" % (self.base, ARTIFACT_ENDPOINT, urlencode({"path": self.artifact_path, "run_uuid": self.run_id}))
        self.timeout = timeout
        self.authorization = None
        if token:
            self.authorization = "Bearer %s" % token
        elif username:
            self.authorization = "Basic %s" % base64.b64encode(("%s:%s" % (username, password)).encode("utf-8")).decode("ascii")
        handlers = []  # redirects are followed; Authorization is an unredirected header, it does not go along
        if self.base.startswith("https:"):
            if not validate_certs:
                context = ssl._create_unverified_context()  # pylint: disable=protected-access
            else:
                try:
                    context = ssl.create_default_context(cafile=ca_path or None)
                except (OSError, ssl.SSLError) as exc:
                    raise InputError("ca_path: cannot load %s: %s" % (ca_path, exc))
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)

    @property
    def where(self):
        return self.base

    @property
    def what(self):
        return "artifact %s of run %s" % (self.artifact_path, self.run_id)

    def client(self):
        if self.username:
            return "user '%s'" % self.username
        if self.token:
            return "a client with a bearer token"
        return "an anonymous client"

    def open(self, first_byte=None, last_byte=None):
        """GET with Range: bytes=first_byte-[last_byte]. Returns (status, response, headers); the response
        is None for 416. Raises _Transient (no answer, 502/503/504) or ArtifactError (any other failure)."""
        request = urllib.request.Request(self.url, method="GET")
        request.add_header("User-Agent", USER_AGENT)
        request.add_header("Accept-Encoding", "identity")
        if first_byte is not None:
            request.add_header("Range", "bytes=%d-%s" % (first_byte, "" if last_byte is None else last_byte))
        if self.authorization:
            request.add_unredirected_header("Authorization", self.authorization)
        try:
            response = self.opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read(65536) if exc.fp is not None else b""
            except Exception:  # pylint: disable=broad-except
                body = b""
            finally:
                exc.close()
            if exc.code == 416:
                return 416, None, exc.headers
            if exc.code in TRANSIENT_STATUS:
                raise _Transient("HTTP %s: %s" % (exc.code, _detail(body, exc.reason)))
            raise ArtifactError(self.failure(exc.code, _detail(body, str(exc.reason))))
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError) or isinstance(reason, ssl.CertificateError):
                raise ArtifactError("tracking_uri: TLS verification failed for %s (set ca_path, or validate_certs: false): %s"
                                    % (self.where, reason))
            raise _Transient(str(reason))
        except (OSError, http.client.HTTPException) as exc:
            raise _Transient("%s: %s" % (exc.__class__.__name__, exc))
        return response.status, response, response.headers

    def failure(self, status, detail):
        what, where = self.what, self.where
        if status == 401:
            check = "token" if self.token else "username and password"
            return ("the tracking server at %s did not accept the credentials of %s (HTTP 401) reading %s: check %s"
                    % (where, self.client(), what, check))
        if status == 403:
            return ("%s may not read %s at %s (HTTP 403: %s): give it READ on the run's experiment"
                    % (self.client(), what, where, detail))
        if status == 404:
            return ("the tracking server at %s has no %s (HTTP 404: %s): check run_id and artifact_path"
                    % (where, what, detail))
        return "the tracking server at %s answered HTTP %s reading %s: %s" % (where, status, what, detail)


# -- fetching --------------------------------------------------------------------------------------
class _Download:
    """The state of one fetch: the part file, its running hash, what came in."""

    def __init__(self, source, part, expected_size, margin, cache_dir):
        self.source = source
        self.part = part
        self.expected_size = expected_size
        self.margin = margin
        self.cache_dir = cache_dir
        self.hasher = None
        self.hashed = 0
        self.downloaded = 0
        self.resumes = []
        self.restarts = 0
        self.total = expected_size
        self.disk = {"checked": False}

    def part_size(self):
        try:
            return os.path.getsize(self.part)
        except OSError:
            return 0

    def drop_part(self):
        try:
            os.unlink(self.part)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise ArtifactError("cache_dir: cannot remove %s: %s" % (self.part, exc))
        self.hasher, self.hashed = None, 0

    def hash_of_part(self, size):
        """The running hash of the part's first size bytes (the part is rehashed unless this run wrote it)."""
        if self.hasher is None or self.hashed != size:
            self.hasher, self.hashed = hash_file(self.part)
        return self.hasher

    def check_total(self, total):
        if total is None:
            return
        if self.expected_size is not None and total != self.expected_size:
            raise ArtifactError("size: the tracking server at %s has %s with %d bytes, size says %d; nothing was written"
                                % (self.source.where, self.source.what, total, self.expected_size))
        self.total = total

    def attempt(self):
        """One request: returns True when the part holds the whole artifact. Raises _Transient for a retry."""
        offset = self.part_size()
        if offset and self.total is not None and offset > self.total:
            self.drop_part()
            offset = 0
        if self.total is not None:
            self.disk = check_disk(self.cache_dir, self.total - offset, self.margin)
        status, response, headers = self.source.open(offset if offset else None)
        if status == 416:
            total = _content_range(headers.get("Content-Range"))[1]
            total = self.expected_size if self.expected_size is not None else total
            if offset and total is not None and offset == total:
                self.check_total(total)
                return True
            if not offset:
                raise ArtifactError(self.source.failure(416, "the server refused a request without a Range"))
            self.drop_part()  # the part is not a prefix of this artifact: start over
            self.restarts += 1
            return False
        with_range = False
        try:
            if status == 206:
                start, total = _content_range(headers.get("Content-Range"))
                if start != offset:  # not the bytes asked for: start over
                    self.drop_part()
                    self.restarts += 1
                    return False
                with_range = True
                self.check_total(total)
            elif status == 200:
                self.check_total(_length(headers.get("Content-Length")))
                if offset:
                    self.restarts += 1  # the server ignored the Range
            else:
                raise ArtifactError(self.source.failure(status, "unexpected answer"))
            start = offset if with_range else 0
            if self.total is not None:
                self.disk = check_disk(self.cache_dir, self.total - start, self.margin)
            if with_range:
                hasher = self.hash_of_part(offset)
                self.resumes.append(offset)
            else:
                hasher = hashlib.sha256()
                self.hasher, self.hashed = hasher, 0
            body_length = _length(headers.get("Content-Length"))
            return self._stream(response, hasher, "ab" if with_range else "wb", start, body_length)
        finally:
            response.close()

    def _stream(self, response, hasher, mode, start, body_length):
        received = 0
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "ab" else os.O_TRUNC)
        try:
            handle = os.fdopen(os.open(self.part, flags, 0o600), mode)
        except OSError as exc:
            raise ArtifactError("cache_dir: cannot write %s: %s" % (self.part, exc))
        with handle:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    raise _Transient("connection cut after %d bytes of the answer (%s: %s)" % (received, exc.__class__.__name__, exc),
                                     cut=True)
                if not block:
                    break
                try:
                    handle.write(block)
                except OSError as exc:
                    raise ArtifactError("cache_dir: cannot write %s: %s (%s kept for the next run)" % (
                        self.part, exc, mib(start + received)))
                hasher.update(block)
                received += len(block)
                self.downloaded += len(block)
                self.hashed = start + received
            if body_length is not None and received < body_length:
                raise _Transient("connection cut after %d of %d bytes of the answer" % (received, body_length), cut=True)
            handle.flush()
            os.fsync(handle.fileno())
        if self.total is None:
            self.total = start + received
        if start + received != self.total:
            raise _Transient("the answer ended at byte %d of %d" % (start + received, self.total), cut=True)
        return True


def _finish(download, final, sha256, mode):
    """Check the part's SHA-256, then move it to the final name (atomic, fsynced)."""
    size = download.part_size()
    if download.hasher is None or download.hashed != size:
        download.hasher, download.hashed = hash_file(download.part)
    actual = download.hasher.hexdigest()
    if actual != sha256:
        download.drop_part()
        raise ArtifactError("sha256: %s from %s has SHA-256 %s, expected %s (%d bytes); the download was deleted, "
                            "nothing is cached" % (download.source.what, download.source.where, actual, sha256, size))
    fd = os.open(download.part, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(download.part, mode)
    os.replace(download.part, final)
    fd = os.open(os.path.dirname(final), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return size


def _check_cache_dir(cache_dir, check_mode):
    if not cache_dir:
        raise InputError("cache_dir: required")
    if os.path.isdir(cache_dir):
        if not os.access(cache_dir, os.W_OK | os.X_OK):
            raise InputError("cache_dir: directory %s is not writable" % cache_dir)
        return True
    if os.path.exists(cache_dir):
        raise InputError("cache_dir: %s is not a directory" % cache_dir)
    if not check_mode:
        raise InputError("cache_dir: directory %s does not exist" % cache_dir)
    return False  # check mode: an earlier task would create it


def _cached(final, size, verify):
    """Whether final is a usable cached copy: (usable, why not, damaged: its content is not its name's)."""
    if not os.path.isfile(final):
        return False, None, False
    actual = os.path.getsize(final)
    if size is not None and actual != size:
        return False, "the cached file has %d bytes, size says %d" % (actual, size), False
    if verify:
        digest = file_sha256(final)
        if digest != os.path.basename(final)[:64]:
            return False, "the cached file's SHA-256 is %s" % digest, True
    return True, None, False


def fetch_to_cache(tracking_uri, run_id, artifact_path, sha256, cache_dir, size=None, username=None, password=None,
                   token=None, validate_certs=True, ca_path=None, timeout=30, keep=3, protect=(), retries=3,
                   verify_existing=False, check_mode=False, mode=0o600, margin=DISK_MARGIN, retry_delay=2.0):
    """Fetch artifact_path of run run_id into cache_dir as <sha256><extension>, unless it is cached.

    Returns dict(path, sha256, size, changed, cached, download, downloaded_bytes, resumed_from, resumes,
    restarts, attempts, removed, disk, msg). ``download`` says whether a download happened (check mode:
    would happen); ``resumed_from`` is the offset the first resumed request of this run started at (0:
    none). Raises InputError (a bad parameter) or ArtifactError (the fetch failed; what was kept is said).
    """
    sha256 = check_sha256(sha256)
    protect = [check_sha256(value, "protect") for value in (protect or [])]
    if size is not None and (not isinstance(size, int) or size < 0):
        raise InputError("size: %r is not a number of bytes" % (size,))
    for name, value in (("keep", keep), ("retries", retries)):
        if not isinstance(value, int) or value < 0:
            raise InputError("%s: %r must be a whole number, 0 or more" % (name, value))
    source = ArtifactSource(tracking_uri, run_id, artifact_path, username=username, password=password, token=token,
                            validate_certs=validate_certs, ca_path=ca_path, timeout=timeout)
    dir_exists = _check_cache_dir(cache_dir, check_mode)
    final = os.path.join(cache_dir, cache_name(sha256, artifact_path))
    part = final + PART_SUFFIX
    result = {"path": final, "sha256": sha256, "size": size, "changed": False, "cached": False, "download": False,
              "downloaded_bytes": 0, "resumed_from": 0, "resumes": [], "restarts": 0, "attempts": 0, "removed": [],
              "disk": {"checked": False}, "replaced": None}

    usable, why, damaged = _cached(final, size, verify_existing) if dir_exists else (False, None, False)
    if usable:
        result.update(cached=True, size=os.path.getsize(final))
        if check_mode:
            result["removed"] = prune(cache_dir, keep, sha256, protect, check_mode=True)
        else:
            with _Lock(cache_dir):
                try:
                    os.utime(final)  # used again: the newest for pruning
                except OSError:
                    pass  # not this user's file: it keeps its age
                result["removed"] = prune(cache_dir, keep, sha256, protect)
        result["changed"] = bool(result["removed"])
        result["msg"] = "%s is cached at %s" % (source.what, final)
        return result
    result["replaced"] = why

    if check_mode:
        return _plan(source, result, cache_dir, part, size, margin, keep, sha256, protect, dir_exists)

    with _Lock(cache_dir):
        usable, why, damaged = _cached(final, size, verify_existing)  # fetched by another process while this one waited
        if usable:
            result.update(cached=True, size=os.path.getsize(final), msg="%s is cached at %s" % (source.what, final))
            result["removed"] = prune(cache_dir, keep, sha256, protect)
            result["changed"] = bool(result["removed"])
            return result
        if damaged:
            os.unlink(final)  # else (another size than size says) the download replaces it, if the server agrees
        download = _Download(source, part, size, margin, cache_dir)
        first_offset = download.part_size()
        failures = cuts = 0
        while True:
            result["attempts"] += 1
            try:
                if download.attempt():
                    break
                if download.restarts > retries + 1:
                    raise ArtifactError("the tracking server at %s did not serve %s from the offsets asked for %d times"
                                        % (source.where, source.what, download.restarts))
            except _Transient as exc:
                failures += 1
                cuts += 1 if exc.cut else 0
                if failures > retries:
                    raise ArtifactError(_give_up(source, exc.reason, failures, cuts, download.part_size(), part))
                time.sleep(min(retry_delay * (2 ** (failures - 1)), 30))
        fetched = _finish(download, final, sha256, mode)
        result["removed"] = prune(cache_dir, keep, sha256, protect)
    result.update(changed=True, download=True, size=fetched, downloaded_bytes=download.downloaded, resumes=download.resumes,
                  restarts=download.restarts, disk=download.disk,
                  resumed_from=download.resumes[0] if download.resumes else 0)
    result["msg"] = "fetched %s from %s to %s (%s%s)" % (
        source.what, source.where, final, mib(download.downloaded),
        ", resumed from byte %d" % result["resumed_from"] if result["resumed_from"] else "")
    if first_offset and not download.resumes:
        result["msg"] += "; the partial download of an earlier run could not be resumed"
    return result


def _times(what, count):
    return "%s %s" % (what, "once" if count == 1 else "%d times" % count)


def _give_up(source, reason, failures, cuts, kept, part):
    if not cuts:
        head = "could not reach the tracking server at %s to read %s (%d tries): %s" % (source.where, source.what, failures, reason)
    else:
        head = "the download of %s from %s %s (last: %s)" % (
            source.what, source.where, _times("was cut", cuts) if cuts == failures else "%s, %d of them cut mid-way"
            % (_times("failed", failures), cuts), reason)
    if kept:
        return "%s; %d bytes (%s) are kept in %s and the next run resumes from there" % (head, kept, mib(kept), part)
    return head + "; nothing was kept"


def _plan(source, result, cache_dir, part, size, margin, keep, sha256, protect, dir_exists):
    """Check mode: probe the artifact (one byte, same authorization as the download), check the disk."""
    offset = os.path.getsize(part) if dir_exists and os.path.isfile(part) else 0
    total = size
    try:
        status, response, headers = source.open(0, 0)
    except _Transient as exc:
        raise ArtifactError("could not reach the tracking server at %s to read %s: %s" % (source.where, source.what, exc.reason))
    if response is not None:
        response.close()
    if status == 206:
        total = _content_range(headers.get("Content-Range"))[1]
    elif status == 200:
        total = _length(headers.get("Content-Length"))
    if size is not None and total is not None and total != size:
        raise ArtifactError("size: the tracking server at %s has %s with %d bytes, size says %d" % (
            source.where, source.what, total, size))
    if total is not None:
        if offset > total:
            offset = 0
        result["disk"] = check_disk(cache_dir, total - offset, margin)
    result.update(changed=True, download=True, size=total, resumed_from=offset,
                  removed=prune(cache_dir, keep, sha256, protect, check_mode=True, current_is_new=True) if dir_exists else [])
    result["msg"] = "%s would be fetched to %s (%s%s)" % (
        source.what, result["path"], mib(total - offset) if total is not None else "size unknown",
        ", resuming from byte %d" % offset if offset else "")
    return result
