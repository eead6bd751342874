"""A tiny application: prints where it runs from and proves a compiled dependency loads."""

import ssl
import sys

import markupsafe


def main() -> int:
    print(f"hello from {sys.prefix}")
    print(f"python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}")
    print(f"markupsafe {markupsafe.__version__}: {markupsafe.escape('<ok>')}")
    return 0
