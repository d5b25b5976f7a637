"""predict.py against hostile or careless input (issue #27): a symlink loop is walked once, the score
cache is keyed by content (a swapped file of the same size and time is scored again) and says which
rows it gave, and ``threshold=`` / ``input=`` are checked, each in one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dfdetect.run.predict import predict
from dfdetect.utils.errors import UserError
from tests.conftest import ROOT, repo_env
from tests.preprocess_fakes import write_image
from tests.test_predict import BLOB, checkpoint, predict_cfg  # noqa: F401 (a fixture)


@pytest.mark.integration
def test_a_symlink_loop_is_listed_once_and_quickly(tmp_path):
    loop = tmp_path / "L"
    write_image(loop / "a.png", seed=1)
    os.symlink(".", loop / "l1")
    os.symlink(".", loop / "l2")
    (loop / "sub").mkdir()
    write_image(loop / "sub" / "b.png", seed=2)
    os.symlink("..", loop / "sub" / "up")
    code = (
        "import sys; from dfdetect.predict.inputs import list_inputs; "
        "print('\\n'.join(i.path for i in list_inputs(sys.argv[1])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(loop)],
        env=repo_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(loop / "a.png"), str(loop / "sub" / "b.png")]


def _same_size(a, b) -> None:
    """Pad the smaller file with bytes after its end (decoders ignore them) to the other's size."""
    sa, sb = a.stat().st_size, b.stat().st_size
    small, n = (a, sb - sa) if sa < sb else (b, sa - sb)
    with open(small, "ab") as f:
        f.write(bytes(n))
    assert a.stat().st_size == b.stat().st_size


def test_the_cache_is_keyed_by_content_and_marks_its_rows(tmp_path, checkpoint):  # noqa: F811
    raw = tmp_path / "raw"
    scored, swap, other = raw / "scored.png", tmp_path / "swap.png", raw / "other.png"
    write_image(scored, seed=5)
    write_image(swap, seed=6, size=(96, 80), discs=((0.3, 0.4, 0.25),))
    write_image(other, seed=7)
    _same_size(scored, swap)
    cache = f"predict.cache={tmp_path / 'cache'}"
    _, first, _ = predict(predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}", cache))
    before = {os.path.basename(v.path): v for v in first}
    stat = scored.stat()
    scored.write_bytes(swap.read_bytes())  # same size, and the time put back: only the bytes differ
    os.utime(scored, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (scored.stat().st_size, scored.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    _, again, run_dir = predict(predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}", cache))
    csv = (run_dir / "predictions.csv").read_text().splitlines()  # before the next run writes its own
    _, fresh, _ = predict(
        predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}", "predict.cache=null")
    )
    rerun = {os.path.basename(v.path): v for v in again}
    truth = {os.path.basename(v.path): v for v in fresh}
    assert rerun["scored.png"].p_fake == pytest.approx(truth["scored.png"].p_fake, abs=1e-9)
    assert rerun["scored.png"].p_fake != pytest.approx(before["scored.png"].p_fake, abs=1e-6)
    assert not any(v.cached for v in first)
    assert (rerun["scored.png"].cached, rerun["other.png"].cached) == (False, True)
    assert csv[0].split(",")[-1] == "cached"
    assert {line.split(",")[0].rsplit("/", 1)[1]: line.split(",")[-1] for line in csv[1:]} == {
        "other.png": "True",
        "scored.png": "False",
    }


@pytest.mark.parametrize("value", ["nan", "2", "-1", "abc", "inf"])
def test_a_threshold_outside_0_1_or_not_a_number_is_refused(tmp_path, checkpoint, value):  # noqa: F811
    write_image(tmp_path / "raw" / "a.png", seed=1)
    cfg = predict_cfg(tmp_path, f"input={tmp_path / 'raw'}", f"ckpt_path={checkpoint}", f"threshold={value}")
    with pytest.raises(UserError, match=r"threshold=.* a number from 0 to 1"):
        predict(cfg)


@pytest.mark.integration
def test_a_missing_or_empty_input_is_one_line(tmp_path, checkpoint):  # noqa: F811
    with pytest.raises(UserError, match="input= is empty"):
        predict(predict_cfg(tmp_path, "input=", f"ckpt_path={checkpoint}"))
    for args in ([], ["input="], ["input=x", "threshold=abc"]):
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "predict.py"),
                *args,
                f"ckpt_path={checkpoint}",
                BLOB,
                "predict.workers=0",
                "predict.progress=false",
                f"paths.log_dir={tmp_path / 'logs'}",
                "hydra.run.dir=" + str(tmp_path / "run"),
            ],
            cwd=tmp_path,  # an empty input= must not scan the current directory
            env=repo_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and "Traceback" not in done.stderr, (args, done.stderr[-1500:])
        assert lines[-1].startswith("predict: error: ") and (
            "input=" in lines[-1] or "threshold=" in lines[-1]
        )


@pytest.mark.integration
def test_help_prints_the_usage_and_the_main_keys(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), "--help"],
        cwd=tmp_path,
        env=repo_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("predict.py: ") and "usage:" in done.stdout
    assert all(key in done.stdout for key in ("input=", "ckpt_path=", "threshold=", "predict.cache="))
    assert "== Config ==" not in done.stdout  # not Hydra's generic help


def test_hidden_files_are_counted_in_the_summary(tmp_path, checkpoint, capsys):  # noqa: F811
    raw = tmp_path / "raw"
    write_image(raw / "a.png", seed=1)
    write_image(raw / ".b.png", seed=2)
    write_image(raw / ".git" / "c.png", seed=3)
    result, verdicts, _ = predict(predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}"))
    assert [os.path.basename(v.path) for v in verdicts] == ["a.png"]
    assert result["hidden_skipped"] == 2
    assert "skipped: 2 hidden file(s) or folder(s)" in capsys.readouterr().out
