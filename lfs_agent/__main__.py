"""``python -m lfs_agent``: the same entry point as the ``lfs-agent`` script."""

from __future__ import annotations

from lfs_agent.cli import main

raise SystemExit(main())
