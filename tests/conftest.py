"""Head starts for tests that mostly wait on the wall clock.

A few end-to-end tests watch whole minutes of a real session (the demo, the benchmark's smallest
latency run): minutes in which this machine is nearly idle. Such a test declares
``@pytest.mark.head_start(launch=...)``: when collection ends, ``launch(workdir)`` is called for each
selected test so marked, and its subprocesses run while the rest of the suite does; marked tests run
last, and each receives what ``launch`` returned through the ``head_start`` fixture and asserts on it. Whatever
was launched is closed (its ``close()``) when the session ends, whether or not its test ran, and a
launch that raised is an error of its own test (at setup), not of the collection; ``--collect-only``
launches nothing. Tested in tests/unit/testing/test_head_start.py.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

_LAUNCHED = pytest.StashKey[object]()
_WORKDIR = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "head_start(launch): call launch(workdir) when collection ends; the test gets its result "
                   "through the head_start fixture (tests/conftest.py)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marked tests run last, in their order: their launches have had the whole suite to finish."""
    items[:] = ([item for item in items if item.get_closest_marker("head_start") is None]
                + [item for item in items if item.get_closest_marker("head_start") is not None])


def pytest_collection_finish(session: pytest.Session) -> None:
    marked = [item for item in session.items if item.get_closest_marker("head_start") is not None]
    if not marked or session.config.option.collectonly:
        return
    workdir = Path(tempfile.mkdtemp(prefix="tickstock-head-start-"))
    session.config.stash[_WORKDIR] = workdir
    for number, item in enumerate(marked):
        launch = item.get_closest_marker("head_start").kwargs["launch"]  # a keyword: a lone class would be decorated
        try:
            item.stash[_LAUNCHED] = launch(workdir / f"{number}")
        except Exception as exc:  # reported by the test itself
            item.stash[_LAUNCHED] = exc


@pytest.fixture
def head_start(request: pytest.FixtureRequest):
    """What this test's ``head_start`` launch returned (launched when collection ended)."""
    launched = request.node.stash.get(_LAUNCHED, None)
    if launched is None:
        pytest.fail("no head_start marker, or nothing was launched for this test")
    if isinstance(launched, Exception):
        raise launched
    return launched


def pytest_sessionfinish(session: pytest.Session) -> None:
    for item in session.items:
        launched = item.stash.get(_LAUNCHED, None)
        if launched is not None and not isinstance(launched, Exception):
            launched.close()
    workdir = session.config.stash.get(_WORKDIR, None)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
