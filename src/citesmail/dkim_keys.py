"""DKIM key pairs: the private key for signing, the DNS record to publish."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from .errors import CitesmailError


def generate(selector: str, domain: str, folder: Path, bits: int = 2048) -> tuple[Path, str]:
    """Write `<selector>.<domain>.pem` (mode 600); return it and the TXT record."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    path = folder / f"{selector}.{domain}.pem"
    if path.exists():
        raise CitesmailError(f"{path} already exists", "keep it, or choose another selector")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(private)
    value = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"
    return path, value


def dns_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"
