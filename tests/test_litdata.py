"""LitData export and streaming: the same clips, splits and items as the clip store path."""

from __future__ import annotations

import json

import hydra
import pytest
import torch

from dfdetect.data import ClipDataModule
from dfdetect.data.litdata_dataset import StreamingClipDataset
from dfdetect.data.litdata_export import ExportMismatchError, export_litdata
from dfdetect.demo.render import build_demo_store
from dfdetect.run.train import train

pytest.importorskip("litdata")


@pytest.fixture(scope="module")
def exported(demo_root, tmp_path_factory):
    # the store of tests/conftest.py's tiny_data_overrides, shared with the other tests
    store = build_demo_store(demo_root, n_groups=8, clips_per_video=2, image_size=64, progress=False)
    out = export_litdata(
        store, tmp_path_factory.mktemp("litdata") / "demo", chunk_bytes="256KB", progress=False
    )
    return store, out


@pytest.fixture
def datamodules(train_cfg, exported):
    def make(*overrides: str) -> tuple[ClipDataModule, ClipDataModule]:
        pair = []
        for fmt in ("store", "litdata"):
            cfg = train_cfg(f"data.format={fmt}", f"data.litdata_uri={exported[1]}", *overrides)
            dm = hydra.utils.instantiate(cfg.data)
            dm.prepare_data()
            dm.setup("fit")
            pair.append(dm)
        return tuple(pair)

    return make


def by_clip(loader) -> dict[str, dict]:
    items = {}
    for batch in loader:
        for i, clip_id in enumerate(batch["clip_id"]):
            assert clip_id not in items, f"{clip_id} streamed twice"
            items[clip_id] = {k: v[i] for k, v in batch.items()}
    return items


def test_export_writes_chunks_per_split_and_is_resumable(exported):
    store, out = exported
    meta = json.loads((out / "export.json").read_text())
    for split, n in meta["clips"].items():
        assert n > 0
        index = json.loads((out / split / "index.json").read_text())
        assert sum(c["chunk_size"] for c in index["chunks"]) == n
    assert len(json.loads((out / "train" / "index.json").read_text())["chunks"]) > 1
    stamp = (out / "train" / "index.json").stat().st_mtime_ns
    export_litdata(store, out, chunk_bytes="256KB", progress=False)
    assert (out / "train" / "index.json").stat().st_mtime_ns == stamp
    with pytest.raises(ExportMismatchError, match="other settings"):
        export_litdata(store, out, split_seed=1, progress=False)


@pytest.mark.parametrize("workers", [0, 2])
def test_every_split_streams_the_same_clips_as_the_store(datamodules, workers):
    store_dm, lit_dm = datamodules(f"data.num_workers={workers}")
    for split in ("train", "val", "test"):
        assert list(lit_dm.split_frame(split)["clip_id"]) == list(store_dm.split_frame(split)["clip_id"])
        ours, theirs = by_clip(lit_dm.dataloader(split)), by_clip(store_dm.dataloader(split))
        assert sorted(ours) == sorted(theirs) == sorted(store_dm.split_frame(split)["clip_id"])
        for clip_id, item in theirs.items():
            got = ours[clip_id]
            assert got["clip"].dtype == torch.uint8 and got["clip"].shape == (5, 3, 64, 64)
            assert torch.equal(got["clip"], item["clip"]), clip_id
            for key in ("label", "clip_index", "video_index"):
                assert got[key].dtype == torch.int64 and got[key] == item[key], key
            assert got["video_id"] == item["video_id"]


def test_random_access_and_augmentation_match_the_store(datamodules):
    store_dm, lit_dm = datamodules()
    assert lit_dm.splits["train"].transform is not None and lit_dm.splits["val"].transform is None
    for i in (0, len(lit_dm.splits["val"]) - 1):
        assert torch.equal(lit_dm.splits["val"][i]["clip"], store_dm.splits["val"][i]["clip"])
    torch.manual_seed(5)
    ours = lit_dm.splits["train"][3]
    torch.manual_seed(5)
    theirs = store_dm.splits["train"][3]
    assert ours["clip_id"] == theirs["clip_id"] and torch.equal(ours["clip"], theirs["clip"])
    assert not torch.equal(ours["clip"], store_dm.dataset("train")[3]["clip"])  # it was augmented


def test_training_stream_keeps_the_batch_contract_and_is_reshuffled(datamodules):
    _, lit_dm = datamodules("data.num_workers=0")
    torch.manual_seed(0)
    epochs = [list(lit_dm.train_dataloader()) for _ in range(2)]
    batch = epochs[0][0]
    assert batch["clip"].dtype == torch.uint8 and batch["clip"].shape[1:] == (5, 3, 64, 64)
    assert batch["label"].dtype == torch.int64 and batch["clip_index"].dtype == torch.int64
    orders = [[cid for b in epoch for cid in b["clip_id"]] for epoch in epochs]
    assert set(orders[0]) | set(orders[1]) <= set(lit_dm.split_frame("train")["clip_id"])
    assert orders[0] != orders[1]


def test_balanced_stream_draws_real_and_fake_equally(datamodules, exported):
    _, lit_dm = datamodules()
    frame = lit_dm.split_frame("train")
    fakes = frame.index[frame["label"] == 1]
    frame = frame.drop(fakes[len(fakes) // 4 :])  # 1 fake in 5 clips; the stream skips the rest
    dataset = StreamingClipDataset(frame, str(exported[1]), image_size=64, shuffle=True, balance=True)
    torch.manual_seed(0)
    labels = [int(item["label"]) for _ in range(5) for item in dataset]
    assert set(item["clip_id"] for item in dataset) <= set(frame["clip_id"])
    assert len(labels) <= 5 * len(frame)
    assert frame["label"].mean() < 0.25 and abs(sum(labels) / len(labels) - 0.5) < 0.1


def test_bad_format_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="data format"):
        ClipDataModule(tmp_path, format="parquet")
    with pytest.raises(ValueError, match="litdata_uri"):
        ClipDataModule(tmp_path, format="litdata")
    dm = ClipDataModule(None, format="litdata", litdata_uri=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="manifest"):
        dm.setup("fit")


def test_fast_dev_run_trains_on_the_stream(train_cfg, exported):
    cfg = train_cfg("trainer.fast_dev_run=true", "data.format=litdata", f"data.litdata_uri={exported[1]}")
    metrics, objects = train(cfg)
    assert metrics["global_step"] == 1
    assert objects["datamodule"].format == "litdata"
    assert "test/auc" in json.loads((objects["run_dir"] / "metrics.json").read_text())


@pytest.fixture
def s3_export(exported, monkeypatch):
    """The export uploaded to a bucket of a local moto S3 server: (uri, storage options)."""
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    import litdata.streaming.downloader as downloader

    for name, value in dict(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    ).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # LitData fetches chunks through obstore when it is installed, and obstore refuses a plain-http
    # endpoint (reqwest "BadScheme"); a local test server has no TLS, so chunks go through boto3
    monkeypatch.setattr(downloader, "_OBSTORE_AVAILABLE", False)
    server = moto_server.ThreadedMotoServer(port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}"}
    client = boto3.client("s3", **options)
    client.create_bucket(Bucket="dfdetect-tests")
    out = exported[1]
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        client.upload_file(str(path), "dfdetect-tests", f"exports/demo/{path.relative_to(out).as_posix()}")
    yield "s3://dfdetect-tests/exports/demo", options
    server.stop()


def test_an_s3_export_streams_the_same_clips_as_the_store(train_cfg, exported, s3_export):
    uri, options = s3_export
    cfg = train_cfg("data.num_workers=0")
    store_dm = hydra.utils.instantiate(cfg.data)
    s3_dm = hydra.utils.instantiate(
        cfg.data, format="litdata", litdata_uri=uri, litdata_storage_options=options
    )
    for dm in (store_dm, s3_dm):
        dm.prepare_data()
        dm.setup("test")
    frame = store_dm.split_frame("test")
    assert list(s3_dm.split_frame("test")["clip_id"]) == list(frame["clip_id"])
    ours, theirs = by_clip(s3_dm.dataloader("test")), by_clip(store_dm.dataloader("test"))
    assert sorted(ours) == sorted(theirs) == sorted(frame["clip_id"])
    assert all(torch.equal(ours[c]["clip"], theirs[c]["clip"]) for c in theirs)


def test_a_missing_s3_export_fails_clearly(train_cfg, s3_export):
    _, options = s3_export
    cfg = train_cfg("data.num_workers=0")
    uri = "s3://dfdetect-tests/exports/nothing"
    dm = hydra.utils.instantiate(cfg.data, format="litdata", litdata_uri=uri, litdata_storage_options=options)
    with pytest.raises(FileNotFoundError, match=f"cannot fetch {uri}/manifest"):
        dm.setup("test")
