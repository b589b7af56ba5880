"""SHA-256 and SHA-1 hex digests without importing hashlib.

``import hashlib`` initialises OpenSSL: about 4 ms of every run's process,
which hashes a flow's structure and names the module of its file. CPython's
own implementations give the same digests and load in a tenth of the time;
hashlib stands in where they are missing (other interpreters, renamed modules).
"""

from __future__ import annotations

__all__ = ["sha256_hex", "sha1_hex"]

try:
    from _sha256 import sha256 as _sha256  # CPython up to 3.11
except ImportError:  # pragma: no cover - 3.12 and later, other interpreters
    try:
        from _sha2 import sha256 as _sha256
    except ImportError:
        from hashlib import sha256 as _sha256

try:
    from _sha1 import sha1 as _sha1
except ImportError:  # pragma: no cover
    from hashlib import sha1 as _sha1


def sha256_hex(data: bytes) -> str:
    """``hashlib.sha256(data).hexdigest()``."""
    return _sha256(data).hexdigest()


def sha1_hex(data: bytes) -> str:
    """``hashlib.sha1(data).hexdigest()``."""
    return _sha1(data).hexdigest()
