# Archive subsystem: the Debian age, zstd and tar CLIs are used by the interoperability tests and
# bench/archive.py (the Python side needs only cryptography, zstandard and shamir-mnemonic).
SYSTEM_PACKAGES += age zstd tar
