"""A failed initdb leaves no cluster behind: the next start makes it again instead of starting a
half-made one (the scratch directory is renamed into place only on success)."""

from __future__ import annotations

from pathlib import Path

import pytest

import tickstock.adapters.embedded.postgres as pgmod
from tickstock.adapters.embedded import EmbeddedError, endpoint


class FailedInitdb:
    def __init__(self, argv: list[str], log: Path) -> None:
        scratch = Path(argv[argv.index("-D") + 1])
        (scratch / "PG_VERSION").write_text("18\n")  # initdb writes this early, then fails
        log.write_text("initdb: error: could not create directory: No space left on device\n")

    def wait(self) -> int:
        return 1


def test_a_failed_initdb_leaves_no_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgmod, "spawn", lambda argv, log, **kwargs: FailedInitdb(argv, log))
    pg = pgmod.EmbeddedPostgres(endpoint("postgres", "postgresql://root@127.0.0.1:5999/x"), tmp_path / "pg")
    with pytest.raises(EmbeddedError, match=r"(?s)initdb failed .*No space left on device"):
        pg.start()
    assert not (tmp_path / "pg" / "data").exists()
