"""scripts/zoo_table.py: finished entries are read, not rerun, and the table keeps them all."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def zoo_table():
    spec = importlib.util.spec_from_file_location("zoo_table", ROOT / "scripts" / "zoo_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finish(out: Path, name: str, auc: float) -> None:
    (out / name).mkdir(parents=True)
    metrics = {"epochs": 3, "val/auc": 0.6, "val/acc": 0.5, "test/auc": auc, "test/acc": 0.55}
    (out / name / "metrics.json").write_text(json.dumps(metrics))


def test_only_keeps_rows_of_earlier_runs(zoo_table, tmp_path, monkeypatch):
    finish(tmp_path, "meso4", 0.61)
    finish(tmp_path, "xception", 0.72)
    monkeypatch.setattr(zoo_table.subprocess, "run", lambda *a, **k: pytest.fail("a finished entry ran"))
    zoo_table.main(["--out", str(tmp_path), "--only", "meso4"])
    table = (tmp_path / "results.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| meso4 ") or line.startswith("| xception ")]
    assert len(rows) == 2
    assert "0.610" in rows[0] and "0.720" in rows[1]
    assert "python train.py data=ffpp_mini model=meso4" in rows[0]


def test_unknown_entry_is_an_error(zoo_table, tmp_path):
    with pytest.raises(SystemExit):
        zoo_table.main(["--out", str(tmp_path), "--only", "mesonet9"])
