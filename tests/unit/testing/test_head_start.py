"""The suite's head-start hooks (tests/conftest.py), run in a pytest of their own (pytester): a
marked test's launch happens when collection ends, before any test runs; marked tests run last; the
test gets what was launched; whatever was launched is closed at the end even if its test was never
run; a launch that raises fails its own test only; ``--collect-only`` launches nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

CONFTEST = (Path(__file__).resolve().parents[2] / "conftest.py").read_text()

TESTS = '''
import pytest
from pathlib import Path

LOG = Path(__file__).parent / "log.txt"


def note(text):
    with open(LOG, "a") as f:
        f.write(text + "\\n")


class Launch:
    def __init__(self, workdir):
        self.workdir = workdir
        note(f"launch {workdir.name}")

    def close(self):
        note("close")


class Broken:
    def __init__(self, workdir):
        note("broken")
        raise RuntimeError("cannot launch")


@pytest.mark.head_start(launch=Launch)
def test_marked(head_start):
    note("marked ran")
    assert isinstance(head_start, Launch)


def test_plain():
    note("plain ran")


@pytest.mark.head_start(launch=Broken)
def test_broken(head_start):
    note("broken ran")


@pytest.mark.head_start(launch=Launch)
def test_never_selected(head_start):
    note("never selected ran")
'''


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=TESTS)
    return pytester


def log(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "log.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_launched_before_any_test_run_last_and_closed_at_the_end(suite: pytest.Pytester) -> None:
    result = suite.runpytest_inprocess("-p", "no:cacheprovider", "-k", "not never_selected")
    result.assert_outcomes(passed=2, errors=1)  # the broken launch: its own test, at setup
    assert log(suite) == ["launch 0", "broken", "plain ran", "marked ran", "close"]
    result.stdout.fnmatch_lines(["*ERROR*test_broken*RuntimeError: cannot launch*"])


def test_what_was_launched_is_closed_even_if_its_test_never_runs(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_first="def test_fails():\n    assert False\n")
    result = suite.runpytest_inprocess("-p", "no:cacheprovider", "-x", "test_first.py", "test_inner.py::test_marked")
    result.assert_outcomes(failed=1)  # -x: stopped before the marked test
    assert log(suite) == ["launch 0", "close"]


def test_collect_only_launches_nothing(suite: pytest.Pytester) -> None:
    suite.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only")
    assert log(suite) == []
