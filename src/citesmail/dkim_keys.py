"""DKIM key pairs: the private key for signing, the DNS record to publish.

Two kinds (RFC 8463 added the second): RSA 2048 (`rsa-sha256`, what every receiver
checks) and Ed25519 (`ed25519-sha256`, short keys and signatures; not every receiver
checks it yet, so publish it beside an RSA one). Keys are PEM files; the kind is read
from the key, so `[dkim]` needs no setting for it.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .config import DNS_NAME
from .errors import CitesmailError

Algorithm = Literal["rsa", "ed25519"]


def generate(selector: str, domain: str, folder: Path, algorithm: Algorithm = "rsa",
             bits: int = 2048) -> tuple[Path, str]:
    """Write `<selector>.<domain>.pem` (mode 600); return it and the TXT record."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    for value, what in ((selector, "selector"), (domain, "domain")):
        if not DNS_NAME.fullmatch(value):
            raise CitesmailError(f"'{value}' cannot be a DKIM {what}: it goes into a DNS "
                                 "name", "use letters, digits, '-' and '.' (an "
                                 "international domain in its xn-- form)")
    path = folder / f"{selector}.{domain}.pem"
    if path.exists():
        raise CitesmailError(f"{path} already exists", "keep it, or choose another selector")
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
        private = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        private = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(private)
    return path, record(algorithm, public)


def record(algorithm: Algorithm, public: bytes) -> str:
    """The TXT record's value for a public key (DER for RSA, the raw 32 bytes for
    Ed25519, as RFC 8463 publishes it)."""
    return f"v=DKIM1; k={algorithm}; p={base64.b64encode(public).decode('ascii')}"


@dataclass(frozen=True)
class PublicKey:
    """The public half of a private key, as its DNS record carries it."""

    algorithm: Algorithm
    public: bytes
    bits: int

    @property
    def record(self) -> str:
        return record(self.algorithm, self.public)


def public_key(pem: bytes, where: Path | str) -> PublicKey:
    """The public half of a PEM private key (RSA or Ed25519)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key = _load(pem, where)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        return PublicKey("ed25519", raw, 256)
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        return PublicKey("rsa", der, key.key_size)
    raise _neither(where)


def signing_key(pem: bytes, where: Path | str) -> tuple[bytes, bytes]:
    """(the key as dkimpy takes it, the signature algorithm) from a PEM private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key = _load(pem, where)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        return base64.b64encode(seed), b"ed25519-sha256"
    if isinstance(key, rsa.RSAPrivateKey):
        return pem, b"rsa-sha256"
    raise _neither(where)


def _load(pem: bytes, where: Path | str) -> object:
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CitesmailError(f"the DKIM private key {where} cannot be read: {exc}",
                             "give an unencrypted PEM key, as citesmail dkim keygen "
                             "writes") from None


def _neither(where: Path | str) -> CitesmailError:
    return CitesmailError(f"the DKIM private key {where} is neither RSA nor Ed25519",
                          "make one with citesmail dkim keygen")


def dns_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"
