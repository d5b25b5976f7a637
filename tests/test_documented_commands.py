"""Every command that README.md, docs/*.md and the comments of dfdetect/conf/**/*.yaml show still works as
written: each Hydra command (``train.py``, ``evaluate.py``, any script with ``@hydra.main``) is run
with ``--cfg job`` and must compose; each other script must answer ``--help`` and know every
``--flag`` shown for it. The docs are read when the test runs, so a command added or changed
anywhere is checked with no list to update here, except for a new placeholder, which fails the
test until it is given a value in PLACEHOLDERS."""

from __future__ import annotations

import functools
import itertools
import json
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from dfdetect.cli import TASKS
from tests.conftest import CONF_DIR, ROOT, repo_env

# <name> after these keys: a real option of that config group
GROUP_EXAMPLES = {
    "model": "meso4",
    "data": "ffpp_mini",
    "trainer": "cpu",
    "experiment": "demo_meso4",
    "debug": "fdr",
    "hparams_search": "lr_wd",
}
# every other placeholder the docs use, and what it stands for in the check; a placeholder not
# listed here fails the test (with its file and line) instead of being skipped
PLACEHOLDERS = {
    "=[...]": "=[a.ckpt,b.ckpt]",
    "<checkpoint>": "a.ckpt",
    "<weights>": "/weights/MesoInception_DF.h5",
    "<sha256>": "0" * 64,
    "<key>": "a-key-of-16-chars-or-more",
    "<ckpt>": "a.ckpt",
    "<detector.ckpt>": "a.ckpt",
    "<detector>": "a.ckpt",
    "<fitted dd3>": "dd3.ckpt",
    "<fitted dd3 ckpt>": "dd3.ckpt",
    "<checkpoint_dir>": "checkpoints/train/runs/run",
    "<run>": "run",
    "<i>": "0",
    "<clrnet_lite ckpt>": "a.ckpt",
    "<raw>": "/data/raw",
    "<raw data>": "/data/raw",
    "<raw dataset>": "/data/raw",
    "<store>": "/data/store",
    "<p>": "gpu",
    "<partition>": "gpu",
    "<name>": "name",
    "<dataset>": "pairs",
    "<csv>": "results.csv",
    "<dir>": "out",
    "<config dir>": "tests",
    "<folder>": "/data/in",
    "<file>": "/data/weights.h5",
    "<video|image|folder|glob|csv>": "/data/in",
    "=N ": "=2 ",
    "$PWD": "/tmp",
    "$D": "data",
    "$i": "0",
}
# documented as failing on purpose: the command must fail, naming this text
EXPECTED_TO_FAIL = {"model=nope": "nope"}

COMMAND = re.compile(r"(?:^|[\s`(;])(?:python3?|torchrun)\s+(?P<rest>.*)", re.S)
# `dfdetect <task> [<benchmark> | train | evaluate] ...`: checked through the alias script of that task
CLI_COMMAND = re.compile(r"(?:^|[\s`(;])dfdetect\s+(?P<task>[a-z][\w-]*)(?P<rest>.*)", re.S)
ALIAS = re.compile(r'alias\("([^"]+)"\)')
SCRIPT = re.compile(r"(?:^|\s)(?P<script>[\w./-]+\.py)(?=\s|$)")
SHELL_END = re.compile(r"\s(?:&&?|;|\|\|?)(?:\s|$)|;\s")
INLINE_CODE = re.compile(r"`([^`]+)`")
FENCE = re.compile(r"^\s*```")
OPTIONAL = re.compile(r"(?<![\w=:'\"])\[([^\[\]]*)\]")  # [x], not key=[list]
ALTERNATIVES = re.compile(r"\{[\w.-]+(?:,[\w.-]+)+\}|(?<==)[\w.-]+(?:\|[\w.-]+)+")  # {a,b}, key=a|b


@dataclass(frozen=True)
class Documented:
    where: str  # file:line
    text: str  # as written
    script: str  # path from the repository root
    args: tuple[str, ...]


def snippets(path: Path) -> list[tuple[int, str]]:
    """(line, text) of each shell snippet: fenced code lines (backslash continuations joined) and
    inline code spans of Markdown; for YAML, comment lines, or their inline code spans."""
    lines = path.read_text().splitlines()
    out: list[tuple[int, str]] = []
    if path.suffix == ".yaml":
        lines = [line.split("#", 1)[1] if "#" in line else "" for line in lines]
        fenced = [True] * len(lines)
    else:  # fence lines themselves count as fenced (and empty), so backticks pair up in prose
        fenced, inside = [], False
        for n, line in enumerate(lines):
            if FENCE.match(line):
                inside, lines[n] = not inside, ""
            fenced.append(inside or not lines[n])
    i = 0
    while i < len(lines):
        start, text = i, lines[i]
        if fenced[i] and "`" not in text:
            while text.rstrip().endswith("\\") and i + 1 < len(lines) and fenced[i + 1]:
                i += 1
                text = text.rstrip()[:-1] + " " + lines[i]
            out.append((start + 1, re.sub(r"\s+#.*$", "", text)))
        i += 1
    prose = "\n".join(line if not f or "`" in line else "" for line, f in zip(lines, fenced, strict=True))
    for match in INLINE_CODE.finditer(prose):
        out.append((prose.count("\n", 0, match.start()) + 1, match.group(1).replace("\n", " ")))
    return out


def expand(text: str, where: str) -> list[str]:
    """The runnable forms of one documented argument string: options unwrapped, alternatives
    (``{a,b}``, ``key=a|b``, ``<a|b>``) expanded, placeholders replaced."""
    text = SHELL_END.split(text)[0]
    text = re.sub(r"\s+\((?:[^()]|\([^()]*\))*\)\s*$", "", text)  # "(reads ... in place)"
    text = re.sub(
        r"\b(\w+)=(<name>|\.\.\.|…)", lambda m: f"{m.group(1)}={GROUP_EXAMPLES.get(*m.groups())}", text
    )
    text = re.sub(r"(?<!\S)(?:\.\.\.|…)(?!\S)", " ", text)
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    while OPTIONAL.search(text):  # [optional] arguments: given
        text = OPTIONAL.sub(r"\1", text)
    text = re.sub(r"=<([\w.-]+(?:\|[\w.-]+)+)>", r"=\1", text)
    unknown = re.findall(r"<[^<>]*>", text)
    if unknown:
        raise ValueError(f"{where}: placeholder(s) {unknown} have no value; add them to PLACEHOLDERS")
    pieces = ALTERNATIVES.split(text)
    choices = [re.split(r"[,|]", c.strip("{}")) for c in ALTERNATIVES.findall(text)]
    return [
        "".join(itertools.chain(*zip(pieces, [*picked, ""], strict=True)))
        for picked in itertools.product(*choices)
    ]


@functools.cache
def alias_scripts() -> dict[str, str]:
    """``dfdetect`` task words (``train``, ``bench predict``, ``puface evaluate``) -> the alias
    script that runs them, from the root and ``scripts/`` aliases themselves."""
    out: dict[str, str] = {}
    for path in sorted([*ROOT.glob("*.py"), *(ROOT / "scripts").glob("*.py")]):
        match = ALIAS.search(path.read_text())
        if match:
            out.setdefault(match.group(1), path.relative_to(ROOT).as_posix())
    return out


def cli_script(task: str, args: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """(alias script, its arguments) of ``dfdetect <task> <args>``; a first argument that names a
    benchmark or a PuFace step is part of the task."""
    scripts = alias_scripts()
    if args and f"{task} {args[0]}" in scripts:
        return scripts[f"{task} {args[0]}"], args[1:]
    if task == "puface":
        return scripts["puface evaluate"], args
    if task not in scripts:
        raise ValueError(f"dfdetect {task}: no such task has an alias script (root or scripts/)")
    return scripts[task], args


def documented_commands() -> list[Documented]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(CONF_DIR.rglob("*.yaml"))]
    found = []
    for path in files:
        for line, snippet in snippets(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            for match in COMMAND.finditer(snippet):
                script = SCRIPT.search(match.group("rest"))
                if script is None or re.match(r"-[mc]\b", match.group("rest")):  # python -m / -c
                    continue
                rest = match.group("rest")[script.end() :]
                for form in expand(rest, where):
                    try:
                        args = tuple(shlex.split(form))
                    except ValueError as exc:
                        raise ValueError(f"{where}: cannot split {form!r} like a shell: {exc}") from exc
                    found.append(Documented(where, snippet.strip(), script.group("script"), args))
                break
            for match in CLI_COMMAND.finditer(snippet):
                for form in expand(match.group("rest"), where):
                    try:
                        args = tuple(shlex.split(form))
                    except ValueError as exc:
                        raise ValueError(f"{where}: cannot split {form!r} like a shell: {exc}") from exc
                    script, args = cli_script(match.group("task"), args)
                    found.append(Documented(where, snippet.strip(), script, args))
                break
    return found


@functools.cache
def is_hydra(script: str) -> bool:
    """Whether the script takes Hydra overrides: an alias of a Hydra task, or a ``@hydra.main``."""
    text = (ROOT / script).read_text()
    match = ALIAS.search(text)
    if match is None:
        return "@hydra.main" in text
    task = match.group(1).split()[0]
    return task != "bench" and TASKS[task].hydra


def sweep_points(args: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Jobs of a -m command (--cfg job takes one job), as plain overrides: enough of them that
    every value of every sweep is composed at least once (the i-th job takes each sweep's i-th
    value, cycling), not the whole product (35 jobs for the detector x dataset grid)."""
    if not {"-m", "--multirun"} & set(args):
        return [args]
    args = tuple(a for a in args if a not in ("-m", "--multirun"))
    values = []
    for override in OverridesParser.create().parse_overrides(list(args)):
        if override.is_sweep_override():
            key = override.get_key_element()
            values.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            values.append([override.input_line])
    jobs = max(len(v) for v in values)
    return [tuple(v[i % len(v)] for v in values) for i in range(jobs)]


# the --help jobs import torch once (about 10 s here), worth about this many --cfg job compositions
HELP_WEIGHT = 40


def run_scripts(jobs: list[tuple[str, tuple[str, ...]]]) -> list[dict]:
    """Run each (script, args) with tests/script_runner.py in two parallel processes: one takes
    the --help jobs and fewer of the others."""
    env = repo_env()
    helps = [i for i, (_, args) in enumerate(jobs) if args == ("--help",)]
    others = [i for i in range(len(jobs)) if i not in set(helps)]
    cut = max(0, (len(others) - HELP_WEIGHT * bool(helps)) // 2)
    parts = [helps + others[:cut], others[cut:]]

    def run(part: list[int]) -> list[dict]:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.script_runner"],
            input=json.dumps([[str(ROOT / jobs[i][0]), list(jobs[i][1])] for i in part]),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout)

    results: list[dict] = [{}] * len(jobs)
    with ThreadPoolExecutor(len(parts)) as pool:
        for part, answers in zip(parts, pool.map(run, parts), strict=True):
            for i, answer in zip(part, answers, strict=True):
                results[i] = answer
    return results


@dataclass
class Checked:
    hydra: list[tuple[Documented, tuple[str, ...], dict]]  # each job of each Hydra command
    helps: dict[str, dict]  # script -> its --help run
    flags: dict[str, dict[str, set[str]]]  # script -> --flag shown for it -> where


@pytest.fixture(scope="module")
def commands() -> list[Documented]:
    return documented_commands()


@pytest.fixture(scope="module")
def checked(commands) -> Checked:
    hydra = [(c, point) for c in commands if is_hydra(c.script) for point in sweep_points(c.args)]
    flags: dict[str, dict[str, set[str]]] = {}
    for c in commands:
        if not is_hydra(c.script):
            shown = flags.setdefault(c.script, {})
            for arg in c.args:
                if arg.startswith("--"):
                    shown.setdefault(arg.split("=")[0], set()).add(c.where)
    jobs = [(c.script, (*point, "--cfg", "job")) for c, point in hydra]
    jobs += [(script, ("--help",)) for script in flags]
    unique = list(dict.fromkeys(jobs))  # several docs show the same command
    answers = dict(zip(unique, run_scripts(unique), strict=True))
    results = [answers[job] for job in jobs]
    return Checked(
        hydra=[(c, point, r) for (c, point), r in zip(hydra, results, strict=False)],
        helps=dict(zip(flags, results[len(hydra) :], strict=True)),
        flags=flags,
    )


def test_the_docs_show_commands_of_every_kind(commands):
    scripts = {c.script for c in commands}
    assert {"train.py", "evaluate.py", "predict.py", "scripts/preprocess.py", "scripts/attack.py"} <= scripts
    assert len(commands) > 50
    missing = sorted({c.script for c in commands if not (ROOT / c.script).is_file()})
    assert not missing, f"the docs run scripts that do not exist: {missing}"


@pytest.mark.integration
def test_every_documented_hydra_command_composes_with_cfg_job(checked):
    failures = []
    for doc, point, result in checked.hydra:
        expected = next((text for key, text in EXPECTED_TO_FAIL.items() if key in point), None)
        ran = shlex.join(["python", doc.script, *point, "--cfg", "job"])
        if expected is not None:
            if result["code"] == 0 or expected not in result["stderr"]:
                failures.append(f"{doc.where}: {doc.text}\n  ran: {ran}\n  should fail naming {expected!r}")
        elif result["code"] != 0:
            error = [
                line for line in result["stderr"].splitlines() if line.strip() and "HYDRA_FULL" not in line
            ]
            failures.append(f"{doc.where}: {doc.text}\n  ran: {ran}\n  " + "\n  ".join(error[:3]))
    assert not failures, f"{len(failures)} documented command(s) fail:\n" + "\n".join(failures)


@pytest.mark.integration
def test_every_documented_script_answers_help_and_knows_its_flags(checked):
    failures = []
    for script, result in checked.helps.items():
        if result["code"] != 0:
            failures.append(f"{script} --help exits {result['code']}: {result['stderr'][-500:]}")
        for flag, places in sorted(checked.flags[script].items()):
            if not re.search(rf"{re.escape(flag)}\b", result["stdout"]):
                failures.append(f"{', '.join(sorted(places))}: {script} has no option {flag}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "text, forms",
    [
        ("data=<name> [data.raw_dir=<raw data>]", ["data=ffpp_mini data.raw_dir=/data/raw"]),
        (
            "ensemble=<dd1|dd2> 'ensemble.members=[...]'",
            [f"ensemble=dd{i} 'ensemble.members=[a.ckpt,b.ckpt]'" for i in (1, 2)],
        ),
        ("model={a,b} x=1 ...", ["model=a x=1", "model=b x=1"]),
        ("hparams_search=lr_wd & done; wait", ["hparams_search=lr_wd"]),
        ("data=ffpp_mini   (reads it in place)", ["data=ffpp_mini"]),
    ],
)
def test_documented_forms(text, forms):
    assert [" ".join(f.split()) for f in expand(text, "x:1")] == [" ".join(f.split()) for f in forms]


def test_an_unknown_placeholder_fails_naming_its_place():
    with pytest.raises(ValueError, match=r"README.md:7: placeholder\(s\) \['<model file>'\]"):
        expand("model.net.weights=<model file>", "README.md:7")
