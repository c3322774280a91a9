"""S3 and S3-compatible buckets (MinIO, Ceph, R2, Wasabi ...) through boto3.

Keys are ``<prefix>/objects/<oid[0:2]>/<oid[2:4]>/<oid>``. boto3 is imported in this
package and nowhere else, and this package only when an ``s3://`` remote is opened
(the registry in :mod:`lfs_agent.backends` names it). One module per verb, as
s3transfer is laid out:

* :mod:`~lfs_agent.backends.s3.client`: options, the boto3 client, error translation;
* :mod:`~lfs_agent.backends.s3.limits`: S3's limits on PUTs and parts, in one object;
* :mod:`~lfs_agent.backends.s3.upload`: a single PUT, or a resumable multipart upload
  (its parts in :mod:`~lfs_agent.backends.s3.parts`, its saved state in
  :mod:`~lfs_agent.backends.s3.upload_state`);
* :mod:`~lfs_agent.backends.s3.download`: a single GET, or parallel ranged GETs;
* :mod:`~lfs_agent.backends.s3.listing`: many stats settled by one listing;
* :mod:`~lfs_agent.backends.s3.collect`: the keys garbage collection lists, creates
  only if absent and deletes only if unchanged;
* :mod:`~lfs_agent.backends.s3.backend`: :class:`S3Backend`, which composes them.

Options (``lfs-agent.s3.<name>`` in git config or ``.lfsagent``, read by
:class:`~lfs_agent.options.Options`): ``profile``, ``region``, ``endpoint-url``,
``addressing-style`` (``path``/``virtual``/``auto``), ``sse`` (``AES256``/``aws:kms``),
``sse-kms-key-id``, ``storage-class``, ``part-size`` and ``multipart-threshold`` (bytes,
or with a K/M/G suffix; 5 MiB to 5 GiB, S3's bounds for a part and a single PUT),
``concurrency`` (parallel parts or ranges per object, 1 to 64), ``checksum``
(``sha256``/``off``), ``retry-mode`` (``standard``/``adaptive``/``legacy``) and
``max-attempts`` (1 to 100).
"""

from __future__ import annotations

from lfs_agent.backends.s3.backend import S3Backend

__all__ = ["S3Backend"]
