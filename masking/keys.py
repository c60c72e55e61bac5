"""The client's secret masking key: making it, naming it safely, and deriving the shuffle-and-mix from it.

A key is 32 random bytes from the operating system. It never leaves the client: manifests, logs and reports
carry only `key_fingerprint(key)`, a short domain-separated hash that names the key without revealing it.

Derivation is by standard-library hashes only, so a key gives the same permutation and matrix on every machine
and every future version of torch or numpy (a masked data set must stay decodable, and new faces must be masked
the same way as the training set): HMAC-SHA256(key, purpose) gives a 256-bit seed per purpose, and SHAKE-256 of
that seed gives as many random bytes as needed. Library random generators are not used because their seeds
are 64 or 128 bits and their streams may change between versions.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets

import numpy as np
import torch

from common.errors import InputError
from masking.obfuscation import KeyedObfuscation

KEY_BYTES = 32
_DOMAIN = b"hybridmask/v1/"
_FINGERPRINT_HEX_CHARS = 16


def generate_key() -> bytes:
    """A fresh 256-bit key from the operating system's cryptographic generator."""
    return secrets.token_bytes(KEY_BYTES)


def validate_key(key: bytes) -> bytes:
    """The key as bytes; InputError when it is not bytes or shorter than 32 bytes (256 bits)."""
    if not isinstance(key, (bytes, bytearray)):
        raise InputError(f"the masking key must be bytes, got {type(key).__name__}")
    if len(key) < KEY_BYTES:
        raise InputError(
            f"the masking key has {len(key)} bytes; it needs at least {KEY_BYTES} (make one with `hybridmask keygen`)"
        )
    return bytes(key)


def key_fingerprint(key: bytes) -> str:
    """16 hex characters naming the key; one-way and separated from every derivation, so safe to print."""
    digest = hashlib.sha256(_DOMAIN + b"fingerprint\x00" + validate_key(key)).hexdigest()
    return digest[:_FINGERPRINT_HEX_CHARS]


def _random_bytes(key: bytes, purpose: str, num_bytes: int) -> bytes:
    seed = hmac.new(key, _DOMAIN + purpose.encode(), hashlib.sha256).digest()
    return hashlib.shake_256(seed).digest(num_bytes)


def _random_uint64(key: bytes, purpose: str, count: int) -> np.ndarray:
    return np.frombuffer(_random_bytes(key, purpose, 8 * count), dtype=">u8").astype(np.uint64)


def _random_normals(key: bytes, purpose: str, count: int) -> np.ndarray:
    """Standard normal samples by Box-Muller from 53-bit uniforms in (0, 1)."""
    pairs = (count + 1) // 2
    uniforms = ((_random_uint64(key, purpose, 2 * pairs) >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    radius = np.sqrt(-2.0 * np.log(uniforms[:pairs]))
    angle = 2.0 * math.pi * uniforms[pairs:]
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:count]


def derive_obfuscation(key: bytes, num_channels: int) -> KeyedObfuscation:
    """The secret permutation and mixing matrix of `num_channels` kept channels, determined by the key.

    Mixing is a dense random orthogonal matrix (QR of a Gaussian matrix, signs fixed so it is uniformly
    distributed over the orthogonal group), because:
    - every output channel blends every kept frequency, so no single channel reveals one;
    - orthogonal means perfectly conditioned: the inverse (the transpose) is exact to float rounding, and the
      mixing keeps energy, so noise and float16 storage hurt no channel more than another;
    - it costs nothing extra at masking time: `FrequencyMasker` folds it into its one convolution.
    The permutation is the paper's shuffle step; with a uniformly random orthogonal matrix after it, it adds no
    secrecy of its own but keeps the method as described. The channel count is part of each derivation, so one
    key gives unrelated maps for different masking ratios.
    """
    key = validate_key(key)
    if int(num_channels) < 1:
        raise InputError(f"num_channels is {num_channels}; the obfuscation needs at least one kept channel")
    size = int(num_channels)
    sort_keys = _random_uint64(key, f"permutation/{size}", size)
    permutation = torch.from_numpy(np.argsort(sort_keys, kind="stable").astype(np.int64))
    gaussian = _random_normals(key, f"mixing/{size}", size * size).reshape(size, size)
    q, r = np.linalg.qr(gaussian)
    orthogonal = q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]
    return KeyedObfuscation(
        permutation=permutation, mixing=torch.from_numpy(orthogonal), key_fingerprint=key_fingerprint(key)
    )
