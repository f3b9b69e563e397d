"""Byte-exact encodings: RFC 8785 canonical JSON and strict JSON decoding."""
