"""Container images in the OCI formats, by concern: :mod:`~venvpack.oci.image` (blobs,
layers, manifests; writing an image layout or an ``oci-archive`` reproducibly and reading
one back contained), :mod:`~venvpack.oci.registry` (pushing to and pulling from a registry
through skopeo) and :mod:`~venvpack.oci.base` (the default base image). The ``oci`` format
(:mod:`venvpack.emit.oci`) puts them together.
"""

from __future__ import annotations

__all__: list[str] = []
