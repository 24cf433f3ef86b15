"""Checkpoints: exact round trips, atomic writes, and clear errors for bad files."""
import json
import os
import struct

import pytest
import torch

import engines
from engines import checkpoint as ckpt
from engines.spec import ImageSpec


def trained(name="vae", steps=3):
    e = engines.create(name, ImageSpec(3, 16, 16), device="cpu", latent_dim=4, width=8)
    x = torch.rand(8, 3, 16, 16)
    for _ in range(steps):
        e.train_step(x)
    return e


@pytest.mark.parametrize("name", ("pca", "ae", "vae"))
def test_round_trip_identical_outputs(tmp_path, name):
    if name == "pca":
        e = engines.create("pca", ImageSpec(3, 16, 16), device="cpu", n_components=4)
        e.fit(torch.rand(20, 3, 16, 16))
    else:
        e = trained(name)
    p = str(tmp_path / "m.safetensors")
    ckpt.save(p, e, data={"name": "x"}, metrics={"mse": 0.1})
    loaded = ckpt.load(p, device="cpu")
    f = loaded.engine
    x = torch.rand(5, 3, 16, 16)
    assert torch.equal(f.encode(x), e.encode(x))
    assert torch.equal(f.decode(e.encode(x)), e.decode(e.encode(x)))
    assert torch.equal(f.sample(4, seed=1), e.sample(4, seed=1))
    assert loaded.info.engine == name and loaded.info.metrics == {"mse": 0.1}
    assert f.step == e.step


def test_optimizer_state_round_trips(tmp_path):
    e = trained("ae")
    p = str(tmp_path / "m.safetensors")
    ckpt.save(p, e)
    f = ckpt.load(p, device="cpu").engine
    a, b = e.optimizers["main"].state_dict(), f.optimizers["main"].state_dict()
    assert a["param_groups"][0]["lr"] == b["param_groups"][0]["lr"]
    for pid, st in a["state"].items():
        for k, v in st.items():
            assert torch.equal(v, b["state"][pid][k])
    # Continuing both gives the same weights.
    x = torch.rand(8, 3, 16, 16)
    e.rng.manual_seed(1)
    f.rng.manual_seed(1)
    e.train_step(x)
    f.train_step(x)
    for (k, v), (_, w) in zip(e.nets.state_dict().items(), f.nets.state_dict().items()):
        assert torch.equal(v, w), k


def test_truncated_and_garbage_files(tmp_path):
    e = trained()
    p = tmp_path / "m.safetensors"
    ckpt.save(str(p), e)
    data = p.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="truncated"):
        ckpt.load(str(tmp_path / "trunc.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(os.urandom(1000))
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load(str(tmp_path / "junk.safetensors"))
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(ckpt.CheckpointError, match="too short"):
        ckpt.load(str(tmp_path / "empty.safetensors"))
    with pytest.raises(ckpt.CheckpointError, match="no such file"):
        ckpt.load(str(tmp_path / "missing.safetensors"))
    # Flip bytes inside the tensor data: the header still parses but shapes/bytes disagree
    # or values change; either way loading must not crash with an unexplained exception.
    bad = bytearray(data)
    bad[9:20] = b"\xff" * 11
    (tmp_path / "hdr.safetensors").write_bytes(bytes(bad))
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load(str(tmp_path / "hdr.safetensors"))


def _rewrite_meta(src, dst, **changes):
    raw = open(src, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header["__metadata__"].update(changes)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    open(dst, "wb").write(struct.pack("<Q", len(new)) + new + raw[8 + n:])


def test_unknown_engine_newer_format_foreign_file(tmp_path):
    e = trained()
    p = str(tmp_path / "m.safetensors")
    ckpt.save(p, e)
    _rewrite_meta(p, str(tmp_path / "u.safetensors"), engine="stylegan9")
    with pytest.raises(ckpt.CheckpointError, match="unknown engine 'stylegan9'"):
        ckpt.load(str(tmp_path / "u.safetensors"))
    _rewrite_meta(p, str(tmp_path / "n.safetensors"), format_version="99")
    with pytest.raises(ckpt.CheckpointError, match="newer"):
        ckpt.load(str(tmp_path / "n.safetensors"))
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ckpt.CheckpointError, match="not a Latent Explorer checkpoint"):
        ckpt.load(str(tmp_path / "foreign.safetensors"))
    _rewrite_meta(p, str(tmp_path / "c.safetensors"), config=json.dumps({"latent_dim": 7, "width": 8}))
    with pytest.raises(ckpt.CheckpointError, match="do not match"):
        ckpt.load(str(tmp_path / "c.safetensors"))


def test_pickle_file_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    import pickle

    p = tmp_path / "evil.safetensors"
    p.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load(str(p))
    assert not marker.exists()


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    e = trained()
    p = str(tmp_path / "m.safetensors")
    ckpt.save(p, e, metrics={"v": 1})
    before = open(p, "rb").read()

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(ckpt.CheckpointError, match="No space left"):
        ckpt.save(p, e, metrics={"v": 2})
    assert open(p, "rb").read() == before
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp")] == []


def test_read_info_has_engine_spec_data_and_thumbnail(tmp_path):
    import numpy as np

    e = trained()
    p = str(tmp_path / "m.safetensors")
    thumb = np.zeros((10, 12, 3), np.uint8)
    ckpt.save(p, e, data={"name": "faces"}, thumbnail=thumb)
    info = ckpt.read_info(p)
    assert info.engine == "vae" and info.spec == ImageSpec(3, 16, 16)
    assert info.latent_shape == [4]
    assert info.data["name"] == "faces"
    assert ckpt.read_thumbnail(p).shape == (10, 12, 3)


def test_update_metrics_and_drop_optimizer(tmp_path):
    e = trained()
    p = str(tmp_path / "m.safetensors")
    ckpt.save(p, e, metrics={"a": 1.0})
    size = os.path.getsize(p)
    ckpt.update(p, metrics={"b": 2.0}, drop_optimizer=True)
    assert ckpt.read_info(p).metrics == {"a": 1.0, "b": 2.0}
    assert os.path.getsize(p) < size
    f = ckpt.load(p, device="cpu").engine
    x = torch.rand(3, 3, 16, 16)
    assert torch.equal(f.decode(f.encode(x)), e.decode(e.encode(x)))
