"""Ed25519 keys and signatures (PyNaCl), key files (PKCS#8 via ``cryptography``)."""

from carledger.crypto.keys import PublicKey, SigningKey, verify_signature

__all__ = ["PublicKey", "SigningKey", "verify_signature"]
