"""The one command: ``dfdetect --help`` lists every task, each task and benchmark resolves to a module
with a ``main()``, the root and ``scripts/`` aliases name real tasks, user configs join through
``--config-dir``, a missing optional package names its extra, and the wheel carries the configs
and the C++ kernel sources."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import zipfile

import pytest
from hydra.core.global_hydra import GlobalHydra

from dfdetect.cli import BENCHMARKS, TASKS, main
from dfdetect.utils.optional import MissingExtraError, require
from tests.conftest import CONF_DIR, ROOT

ALIAS = re.compile(r'alias\("([^"]+)"\)')


def test_help_lists_every_task_on_one_line(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out.splitlines()
    listed = {line.split()[0]: line for line in out if line.startswith("  ")}
    assert set(listed) == set(TASKS)
    assert all(len(line.split(maxsplit=1)) == 2 for line in listed.values())  # each has its one line


def test_an_unknown_task_or_benchmark_exits_2_naming_it(capsys):
    assert main(["trian"]) == 2
    assert "unknown task 'trian'" in capsys.readouterr().err
    assert main(["bench", "nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(set(TASKS) - {"bench"}))
def test_every_task_is_a_module_with_main(name):
    assert callable(importlib.import_module(TASKS[name].module).main)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_is_a_module_with_main_and_an_alias(name):
    module = "dfdetect.bench." + name.replace("-", "_")
    assert callable(importlib.import_module(module).main)
    alias = ROOT / "scripts" / f"benchmark_{name.replace('-', '_')}.py"
    assert ALIAS.search(alias.read_text()).group(1) == f"bench {name}"


def test_every_alias_runs_a_real_task():
    aliases = {p.relative_to(ROOT).as_posix(): ALIAS.search(p.read_text()) for p in
               [*ROOT.glob("*.py"), *(ROOT / "scripts").glob("*.py")]}  # fmt: skip
    assert {"train.py", "evaluate.py", "predict.py", "serve.py"} <= set(aliases)
    for path, match in aliases.items():
        assert match, f"{path} is not an alias of a dfdetect task"
        words = match.group(1).split()
        assert words[0] in TASKS, path
        if words[0] == "bench":
            assert words[1] in BENCHMARKS, path


def test_user_configs_join_through_config_dir(tmp_path, capsys):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mynet.yaml").write_text("defaults:\n  - meso4\n\nnet:\n  dropout: 0.25\n")
    GlobalHydra.instance().clear()
    main(["train", "--config-dir", str(tmp_path), "model=mynet", "--cfg", "job"])
    out = capsys.readouterr().out
    assert "name: meso4" in out and "dropout: 0.25" in out


def test_a_missing_optional_package_names_its_extra():
    with pytest.raises(MissingExtraError, match=r"pip install 'dfdetect\[cloud\]'"):
        require("surely_not_installed_pkg", "cloud", "the aws provider")
    assert require("json", "cloud", "x") is sys.modules["json"]


@pytest.mark.integration
def test_the_wheel_holds_the_configs_the_kernels_and_the_command(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=600)  # fmt: skip
    wheel = next(tmp_path.glob("dfdetect-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"dfdetect/conf/{p.relative_to(CONF_DIR).as_posix()}" for p in CONF_DIR.rglob("*.yaml")}
    assert configs <= names
    kernels = ROOT / "dfdetect" / "models" / "layers" / "convlstm" / "csrc"
    sources = {
        f"dfdetect/models/layers/convlstm/csrc/{p.name}"
        for p in kernels.iterdir()
        if p.suffix in (".cpp", ".h")
    }
    assert sources and sources <= names
    assert "dfdetect/measure/aliases.csv" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "dfdetect = dfdetect.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not any(n.startswith(("tests/", "scripts/")) for n in names)


def test_tasks_write_under_the_project_root_not_the_package(tmp_path, monkeypatch):
    from dfdetect.utils.paths import project_root, shared_dir

    monkeypatch.delenv("DFDETECT_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert project_root() == tmp_path and shared_dir() == tmp_path.parent / "shared"
    monkeypatch.setenv("DFDETECT_ROOT", str(ROOT))
    assert project_root() == ROOT and shared_dir() == ROOT.parent / "shared"
