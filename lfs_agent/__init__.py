"""lfs-agent: plain git carries large files, with the bytes in your own bucket.

The package is importable without any optional SDK: boto3 and google-cloud-storage are
imported only by the backend module that needs them, because git spawns us per command
and start-up time is part of the product.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
