"""API keys (stored only as SHA-256 hashes) and a per-key token-bucket rate limit.

``keys.json`` in the serve directory::

    {"keys": [{"id": "team-a", "sha256": "<hex>", "created": 1700000000.0, "rpm": 600}]}

``tao keys add ID`` creates a random key, prints it once and stores only its hash with the id; the inference
table records the id, never the key. Keys are high-entropy random tokens, so an unsalted SHA-256 is enough
(there is nothing to brute-force); comparison is constant-time.

Auth fails closed. ``KeyRing(required=True)`` (``tao serve`` unless ``--no-auth``) refuses every request while
there are no keys; ``required=None`` (``create_app``'s default) requires a key as soon as a keys file exists —
revoking the last key leaves an empty file, so everything is refused, never opened — and keeps requiring one
if that file later disappears; only ``required=False`` (``tao serve --no-auth``) or a ``create_app`` with no
serve directory serves everyone, logged with key id ``anonymous``. A keys file that cannot be parsed raises
``TaoError`` (at startup: the server does not start; while serving: the gateway refuses requests with a 503).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from pathlib import Path

from opentao.errors import TaoError
from opentao.serve.durable import durable_write_text

KEYS_FILE = "keys.json"
ANONYMOUS = "anonymous"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _load(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = data["keys"]
        assert isinstance(keys, list) and all({"id", "sha256"} <= set(k) for k in keys)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise TaoError(f"{path}: not a keys file (expected {{\"keys\": [{{\"id\", \"sha256\"}}, ...]}})") from None
    return keys


def add_key(serve_dir: str | Path, key_id: str, *, rpm: int | None = None) -> str:
    """Create a key for ``key_id``, store its hash, return the key (shown once)."""
    if not key_id or not key_id.replace("-", "").replace("_", "").isalnum():
        raise TaoError(f"key id {key_id!r}: use letters, digits, '-' and '_'")
    path = Path(serve_dir) / KEYS_FILE
    keys = _load(path)
    if any(k["id"] == key_id for k in keys):
        raise TaoError(f"key id {key_id!r} already exists in {path} (revoke it first)")
    key = "sk-tao-" + secrets.token_urlsafe(32)
    entry = {"id": key_id, "sha256": hash_key(key), "created": time.time()}
    if rpm is not None:
        entry["rpm"] = rpm
    durable_write_text(path, json.dumps({"keys": [*keys, entry]}, indent=2) + "\n")
    return key


def revoke_key(serve_dir: str | Path, key_id: str) -> None:
    path = Path(serve_dir) / KEYS_FILE
    keys = _load(path)
    if not any(k["id"] == key_id for k in keys):
        raise TaoError(f"no key with id {key_id!r} in {path}")
    durable_write_text(path, json.dumps({"keys": [k for k in keys if k["id"] != key_id]}, indent=2) + "\n")


def list_keys(serve_dir: str | Path) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "sha256"} for e in _load(Path(serve_dir) / KEYS_FILE)]


class KeyRing:
    """Verifies bearer tokens against the stored hashes (re-read when the file changes) and rate-limits per key."""

    def __init__(self, path: str | Path | None, *, default_rpm: int = 0, required: bool | None = None):
        self.path = Path(path) if path else None
        self.default_rpm = default_rpm
        self.required = False if self.path is None else required
        self._mtime: float | None = None
        self._by_hash: dict[str, dict] = {}
        self._buckets: dict[str, list[float]] = {}  # key id → [tokens, last refill time]
        self._lock = threading.Lock()
        self._reload()

    def _reload(self) -> None:
        if self.path is None:
            return
        if self.required is False:
            return
        try:
            mtime = self.path.stat().st_mtime_ns if self.path.is_file() else None
        except OSError:  # replaced meanwhile: read it at the next request
            return
        if mtime is not None and self.required is None:
            self.required = True  # once a keys file was seen, auth stays on (even if it is deleted)
        if mtime != self._mtime:
            self._by_hash = {k["sha256"]: k for k in _load(self.path)} if mtime is not None else {}
            self._mtime = mtime

    @property
    def enabled(self) -> bool:
        """Whether a key is required (with no keys, that means every request is refused)."""
        self._reload()
        return bool(self.required)

    @property
    def has_keys(self) -> bool:
        return bool(self._by_hash)

    def verify(self, authorization: str | None) -> str | None:
        """The key id for an ``Authorization: Bearer <key>`` header; None when missing or wrong (or no keys).

        Raises ``TaoError`` when the keys file cannot be parsed."""
        if not self.enabled:
            return ANONYMOUS
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        digest = hash_key(authorization[7:].strip())
        for stored, entry in self._by_hash.items():
            if hmac.compare_digest(stored, digest):
                return entry["id"]
        return None

    def allow(self, key_id: str) -> bool:
        """Token bucket: ``rpm`` requests per minute with a burst of ``rpm``; 0 means unlimited."""
        entry = next((e for e in self._by_hash.values() if e["id"] == key_id), {})
        rpm = int(entry.get("rpm", self.default_rpm) or 0)
        if rpm <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, [float(rpm), now])
            tokens = min(float(rpm), tokens + (now - last) * rpm / 60.0)
            ok = tokens >= 1.0
            self._buckets[key_id] = [tokens - 1.0 if ok else tokens, now]
            return ok
