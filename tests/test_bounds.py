"""Bounds (issue #17): every engine option has a range checked before anything is allocated — in
`--set`, in a checkpoint's stored config and in every numeric flag of the command line — and a
request whose memory estimate exceeds what the machine has is refused with the estimate. Bad
values (negative, zero, huge, NaN, ±Inf, not a number) are one line and exit 2: a table run in
process through `engines.cli.main`, and a sample as real `main.py` processes (no traceback,
peak RSS < 500 MB)."""
import json
import math
import os

import numpy as np
import pytest

import main_process

import engines
from engines import bounds
from engines import checkpoint as ckpt
from engines import config as cfgmod
from engines.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RSS_LIMIT_KB = 500 * 1024
BAD_NUMBERS = ("nan", "inf", "-inf", "1e999", "abc", "", "0x10", "1e400", "99999999999999999999999999")


def _numeric_rows():
    for name in engines.names():
        for row in cfgmod.describe(engines.engine_class(name).Config):
            if row["type"] in ("int", "float"):
                yield name, row


def test_every_numeric_option_has_both_bounds_and_a_default_inside():
    rows = list(_numeric_rows())
    assert len(rows) > 50
    for name, row in rows:
        assert row["min"] is not None and row["max"] is not None, (name, row["name"])
        assert row["min"] <= row["default"] <= row["max"], (name, row["name"])
    limits = {(n, r["name"]): r["max"] for n, r in rows}
    assert limits[("diffusion", "timesteps")] == 10_000 and limits[("vqvae", "codebook_size")] == 65_536
    assert all(r["min"] > 0 for n, r in rows if r["name"] == "lr" and n != "pca")  # finite, positive
    assert all(r["min"] >= 1 for n, r in rows if r["name"] == "batch_size")


def _bad_values(row) -> list:
    lo, hi = row["min"], row["max"]
    out = list(BAD_NUMBERS) + [float("nan"), float("inf"), True, None, [1], {"a": 1}]
    out += [lo - 1 if row["type"] == "int" else lo - abs(lo) - 1.0, hi * 10 + 1, str(hi * 10 + 1), f"{hi * 10 + 1:e}"]
    if row["type"] == "int":
        out += [1.5, "2.5", 10**30]
    return out


def test_config_values_out_of_bounds_are_refused_naming_the_field():
    n = 0
    for name, row in _numeric_rows():
        cls = engines.engine_class(name).Config
        for v in _bad_values(row):
            with pytest.raises(cfgmod.ConfigError, match=f"'{row['name']}'") as ex:
                cfgmod.build(cls, {row["name"]: v})
            assert "\n" not in str(ex.value) and len(str(ex.value)) < 300
            n += 1
        assert cfgmod.build(cls, {row["name"]: row["max"]})  # the bounds themselves are allowed
        assert cfgmod.build(cls, {row["name"]: row["min"]})
    print(f"{n} out-of-bounds config values refused")
    assert n > 800


@pytest.mark.parametrize("text,needle", [
    ('{"timesteps": 1e9}', "timesteps"), ('{"timesteps": "many"}', "timesteps"), ('{"lr": NaN}', "lr"),
    ('{"lr": Infinity}', "lr"), ('{"width": -4}', "width"), ("not json", "not valid JSON"),
    ("[1, 2]", "JSON object"), ('"text"', "JSON object"), ("[" * 100_000, "JSON"),
])
def test_stored_config_is_checked_like_set(text, needle):
    with pytest.raises(cfgmod.ConfigError, match=needle):
        cfgmod.from_json(engines.engine_class("diffusion").Config, text)


def test_checkpoint_with_out_of_range_config_is_refused(tmp_path, tiny_dataset):
    ds = tiny_dataset(n=16, size=8)
    e = engines.create("vae", ds.spec, device="cpu", latent_dim=2, width=4)
    e.config.latent_dim = 10**9  # as if the file had been edited: the config says what nothing could build
    path = str(tmp_path / "edited.safetensors")
    ckpt.save(path, e)
    with pytest.raises(ckpt.CheckpointError, match="latent_dim"):
        ckpt.load(path, device="cpu")


# ---- the command line -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny checkpoints: a VAE (export, sample, encode, evaluate) and a GAN (sampling options)."""
    from conftest import make_blobs

    d = tmp_path_factory.mktemp("bounds")
    ds = make_blobs(n=32, size=8)
    data = str(d / "blobs.npz")
    np.savez(data, images=ds.images, labels=ds.labels)
    out = {"dir": d, "data": data}
    for name, cfg in (("vae", {"latent_dim": 2, "width": 4}), ("gan", {"latent_dim": 2, "width": 4})):
        e = engines.create(name, ds.spec, device="cpu", **cfg)
        out[name] = str(d / f"{name}.safetensors")
        ckpt.save(out[name], e, data={**ds.describe(), "source": data})
    return out


# (command, fixed arguments, flag, values that must be refused besides BAD_NUMBERS)
FLAGS = [
    ("train", ["--engine", "vae", "--data", "D", "--out", "o.safetensors"], "--size", ["-3", "2", "0", "7", "257", "100000", "28.5"]),
    ("train", ["--engine", "vae", "--data", "D", "--out", "o.safetensors"], "--epochs", ["0", "-1", "1e7"]),
    ("train", ["--engine", "vae", "--data", "D", "--out", "o.safetensors"], "--minutes", ["0", "-1", "1e7"]),
    ("train", ["--engine", "vae", "--data", "D", "--out", "o.safetensors"], "--seed", ["-1", "1.5", str(2**40)]),
    ("train", ["--engine", "vae", "--data", "D", "--out", "o.safetensors"], "--checkpoint-every", ["-1", "1e9"]),
    ("train", ["--engine", "vae", "--data", "D", "--out", "o.safetensors"], "--channels", ["2", "0", "-1"]),
    ("train-prior", ["--checkpoint", "C"], "--epochs", ["0", "-1"]),
    ("train-prior", ["--checkpoint", "C"], "--seed", ["-1"]),
    ("sample", ["--checkpoint", "C", "--out", "o.png"], "--n", ["0", "-3", "10001"]),
    ("sample", ["--checkpoint", "C", "--out", "o.png"], "--seed", ["-1"]),
    ("sample", ["--checkpoint", "C", "--out", "o.png"], "--cols", ["0", "-1"]),
    ("sample", ["--checkpoint", "C", "--out", "o.png"], "--scale", ["0", "-2", "65", "2.5"]),
    ("evaluate", ["--checkpoint", "C"], "--n", ["0", "-1", "1000000"]),
    ("evaluate", ["--checkpoint", "C"], "--seed", ["-1"]),
    ("export", ["--checkpoint", "C", "--out", "o.gif"], "--seed", ["-1"]),
    ("export", ["--checkpoint", "C", "--out", "o.gif"], "--keys", ["1", "0", "-4", "1001"]),
    ("export", ["--checkpoint", "C", "--out", "o.gif"], "--seconds", ["0", "-1", "100000"]),
    ("export", ["--checkpoint", "C", "--out", "o.gif"], "--fps", ["0", "-24", "241", "1e9"]),
    ("export", ["--checkpoint", "C", "--out", "o.gif"], "--size", ["0", "-3", "7", "100000"]),
    ("export", ["--checkpoint", "C", "--out", "o.gif"], "--scale", ["0", "-1", "65"]),
    ("export", ["--checkpoint", "C", "--out", "o.gif"], "--from", ["1e6", "-1e6"]),
    ("export", ["--checkpoint", "C", "--out", "o.gif"], "--to", ["1e6"]),
    ("export", ["--checkpoint", "C", "--out", "o.gif"], "--n", ["0", "-1", "1025"]),
    ("export", ["--checkpoint", "C", "--out", "o.gif"], "--cols", ["0", "-1", "1025"]),
]


def _cases():
    for cmd, fixed, flag, extra in FLAGS:
        values = [v for v in BAD_NUMBERS if not (flag == "--channels" and v == "")] + extra
        for v in values:
            yield [cmd, *fixed, flag, v]


def _refused(argv, capsys, needle=None) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, (argv, rc, err)
    assert len(err) == 1 and "Traceback" not in err[0], (argv, err)
    if needle:
        assert needle in err[0], (argv, err)
    return err[0]


def test_bad_numeric_flags_are_one_line_in_process(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = list(_cases())
    for argv in cases:
        _refused(argv, capsys)
    print(f"{len(cases)} bad numeric flags refused in one line")
    assert len(cases) >= 250


def _settings_cases(m):
    d, vae, gan, data = m["dir"], m["vae"], m["gan"], m["data"]
    out = str(d / "o.safetensors")
    train = ["train", "--data", data, "--out", out, "--device", "cpu"]
    return [
        (train + ["--engine", "diffusion", "--set", "timesteps=1000000000"], "timesteps"),
        (train + ["--engine", "vae", "--set", "lr=nan"], "'lr'"),
        (train + ["--engine", "vae", "--set", "lr=0"], "'lr'"),
        (train + ["--engine", "vae", "--set", "lr=-1e-3"], "'lr'"),
        (train + ["--engine", "vae", "--set", "batch_size=0"], "batch_size"),
        (train + ["--engine", "vae", "--set", "latent_dim=1e9"], "latent_dim"),
        (train + ["--engine", "vqvae", "--set", "codebook_size=100000"], "codebook_size"),
        (train + ["--engine", "gan", "--set", "beta1=inf"], "beta1"),
        (train + ["--engine", "gan", "--set", "gp_weight=-1"], "gp_weight"),
        (train + ["--engine", "vae", "--set", "width=100000"], "width"),
        (train + ["--engine", "vae", "--set", "nonsense=1"], "unknown setting"),
        (["sample", "--checkpoint", gan, "--out", str(d / "s.png"), "--set", "truncation=nan"], "truncation"),
        (["sample", "--checkpoint", gan, "--out", str(d / "s.png"), "--set", "label=1e9"], "label"),
        (["sample", "--checkpoint", gan, "--out", str(d / "s.png"), "--set", "truncation=1e999"], "truncation"),
        (["export", "--checkpoint", vae, "--out", str(d / "e.gif"), "--keys", "1000", "--seconds", "3600",
          "--fps", "240"], "frames"),
        (["export", "--checkpoint", vae, "--out", str(d / "e.gif"), "--kind", "grid", "--n", "1024", "--scale", "64"],
         "larger than"),
    ]


def test_bad_settings_and_counts_are_one_line_in_process(models, capsys):
    for argv, needle in _settings_cases(models):
        print(_refused(argv, capsys, needle))
    assert not os.path.exists(models["dir"] / "o.safetensors")


def test_memory_estimates_refuse_with_the_estimate(models, capsys, monkeypatch):
    d = models["dir"]
    monkeypatch.setenv("LATENT_EXPLORER_MEMORY_LIMIT", str(2**20))  # a machine with 1 MiB free
    msg = _refused(["train", "--engine", "vae", "--data", models["data"], "--out", str(d / "m.safetensors"),
                    "--device", "cpu"], capsys, "memory")
    assert "MiB" in msg and "available" in msg
    _refused(["sample", "--checkpoint", models["vae"], "--out", str(d / "m.png"), "--n", "10000"], capsys, "memory")
    _refused(["export", "--checkpoint", models["vae"], "--out", str(d / "m.gif"), "--fps", "240", "--seconds", "60",
              "--size", "512"], capsys, "memory")
    assert not any(p.name.startswith("m.") for p in d.iterdir())
    # The estimates themselves are simple and grow with what they count.
    spec = engines.spec.ImageSpec(3, 64, 64)
    small = bounds.training_estimate(cfgmod.build(engines.engine_class("vae").Config, {}), spec, 1000)
    big = bounds.training_estimate(cfgmod.build(engines.engine_class("vae").Config, {"batch_size": 4096, "width": 256}),
                                   spec, 1000)
    assert 0 < small < 2**30 < big
    assert bounds.export_estimate(100, 64, 64, 16, gif=True) > bounds.export_estimate(100, 64, 64, 16, gif=False)
    monkeypatch.delenv("LATENT_EXPLORER_MEMORY_LIMIT")
    assert bounds.available_memory() > 0 and math.isfinite(bounds.available_memory())


def run_cli(args: list[str], cwd) -> tuple[int, str, int]:
    """(exit status, stderr, peak RSS in KB of the `main.py` process): tests/main_process.py."""
    r = main_process.run(args, cwd=str(cwd))
    return r.rc, r.stderr, int(r.peak_mb * 1024)


def test_a_sample_as_real_processes(models):
    d = models["dir"]
    out = str(d / "p.safetensors")
    for argv in (["train", "--engine", "vae", "--data", models["data"], "--size", "100000", "--out", out],
                 ["train", "--engine", "diffusion", "--data", models["data"], "--set", "timesteps=1000000000",
                  "--out", out, "--device", "cpu"],
                 ["export", "--checkpoint", models["vae"], "--out", str(d / "p.gif"), "--fps", "nan"]):
        rc, err, rss_kb = run_cli(argv, str(d))
        assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, (argv, rc, err)
        assert rss_kb < RSS_LIMIT_KB, (argv, rss_kb)
    assert not os.path.exists(out)


def test_json_has_no_bounds_leak():
    """The bounds are metadata, not config values: a saved config is the same JSON as before."""
    cfg = cfgmod.build(engines.engine_class("vae").Config, {})
    assert set(json.loads(cfgmod.to_json(cfg))) == {r["name"] for r in cfgmod.describe(type(cfg))}
