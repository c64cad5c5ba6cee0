"""Fixtures for the service tests: every test leaves no actor running."""

from __future__ import annotations

import pykka
import pytest


@pytest.fixture(autouse=True)
def _stop_all_actors():
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
