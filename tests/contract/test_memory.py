"""The in-memory reference backend passes the garbage-collection contract."""

from __future__ import annotations

import pytest

from tests.contract.backend_contract import CollectContract
from tests.memory_backend import MemoryBackend


class TestMemoryBackend(CollectContract):
    @pytest.fixture
    def backend(self) -> MemoryBackend:
        return MemoryBackend()

    @pytest.fixture
    def versioned_backend(self) -> MemoryBackend:
        return MemoryBackend(versioned=True)
