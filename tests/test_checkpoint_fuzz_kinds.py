"""Issue #17 for the newer checkpoint kinds: latent diffusion (built-in and reused first stage, one
file holding first stage + U-Net + scale factor), flow, PixelCNN (with the `positions` field, and a
file from before it), and a VQ-VAE with a PixelCNN code prior. A corpus of malformed files is
generated from a tiny real checkpoint of each, trained in the test (tests/new_kinds.py,
tests/new_kinds_corpus.py): every case is a one-line CheckpointError in process (load, the resume
path, the library's header read) without a large allocation first (the process's peak RSS stays
put), and a sample runs through `python main.py` (exit 2, one line on stderr, no traceback)."""
from __future__ import annotations

import collections
import os
import random
import resource

import pytest
import torch

import main_process

from engines import checkpoint as ckpt
from tests import new_kinds, new_kinds_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("kinds")
    good = new_kinds.kinds(str(root / "good"))
    other = new_kinds.save(str(root / "good" / "ld-3-channels.safetensors"), new_kinds.make_ld(latent_channels=3))
    out = {}
    for kind, (src, make) in good.items():
        out[kind] = (src, new_kinds_corpus.build(kind, src, str(root / kind), random.Random(11), make,
                                                  new_kinds.save, other))
    return out


def test_corpus_sizes_and_kinds(corpora):
    total = 0
    for kind, (_, cases) in corpora.items():
        groups = collections.Counter(k.split("-")[0] for k, _, _ in cases)
        print(f"\n{kind}: {len(cases)} cases {dict(groups)}", end="")
        total += len(cases)
        assert len(cases) >= 80, kind
        for g in ("truncate", "flip", "lie", "tensor", "config", "nonfinite"):
            assert groups[g] >= 2, (kind, g)
    print(f"\ntotal: {total}")
    assert set(corpora) == {"latent-diffusion", "latent-diffusion-reused", "flow", "pixelcnn",
                            "pixelcnn-before-positions", "vq-pixelcnn-prior"}
    own = {k for _, cases in corpora.values() for k, _, _ in cases}
    for k in ("ld-scale", "ld-first-stage-disagrees", "ld-unet-disagrees", "ldr-first-stage-gan",
              "ldr-first-stage-config-inflated", "ldr-autoencoder-without-first-stage", "pix-positions-dropped",
              "pix-positions-claimed", "vq-prior-transformer", "vq-prior-steps"):
        assert k in own, k


def test_every_case_is_one_line_and_allocates_nothing_big_first(corpora):
    for src, _ in corpora.values():  # warm up: each kind built and read once
        ckpt.load(src, device="cpu")
    peak0 = _peak_mb()
    failures, n = [], 0
    for kind, (_, cases) in corpora.items():
        for case, path, expect in cases:
            n += 1
            where = f"{kind} {case} {os.path.basename(path)}"
            try:
                loaded = ckpt.load(path, device="cpu")
            except ckpt.CheckpointError as e:
                msg = str(e)
                if expect is None:
                    failures.append(f"{where}: refused a good file: {msg}")
                elif not msg or "\n" in msg or expect not in msg:
                    failures.append(f"{where}: message {msg!r}, expected {expect!r}")
            except Exception as e:  # noqa: BLE001 - anything else is the bug this test looks for
                failures.append(f"{where}: {type(e).__name__}: {e}"[:300])
            else:
                if expect is not None:
                    failures.append(f"{where}: ACCEPTED")
                else:
                    assert loaded.engine.name == ckpt.read_info(path).engine
    grew = _peak_mb() - peak0
    print(f"\n{n - len(failures)}/{n} as expected; peak RSS grew {grew:.0f} MB over the corpus")
    assert not failures, "\n".join(failures[:40])
    # The inflated settings (widths of 256-2048, 10 000 classes, 4096-wide first stages) would take
    # 90 MB and more each if built before their shapes were checked.
    assert grew < 60, grew


def test_resume_and_library_paths_refuse_too(corpora):
    for kind, (_, cases) in corpora.items():
        for case, path, expect in cases[::13]:
            if expect is None:
                continue
            with pytest.raises(ckpt.CheckpointError) as e:
                ckpt.load(path, device="cpu", with_optimizer=True)
            assert "\n" not in str(e.value)
            try:
                ckpt.read_info(path)  # header only: damage in the weights shows when loaded
            except ckpt.CheckpointError as e:
                assert "\n" not in str(e) and str(e)


def test_hostile_first_stage_is_refused_from_the_header(corpora):
    """A reused first stage is described in the header: a bad description is refused by
    read_info already (the library's listing), before any network is built."""
    _, cases = corpora["latent-diffusion-reused"]
    said = {}
    header_level = ("ldr-first-stage-gan", "ldr-first-stage-itself", "ldr-first-stage-config-wrong-type",
                    "ldr-first-stage-not-json", "ldr-first-stage-a-list", "ldr-first-stage-unknown-engine",
                    "ldr-first-stage-pixelcnn", "ldr-first-stage-config-beyond-range",
                    "ldr-autoencoder-without-first-stage")
    for case, path, _ in cases:
        if case in header_level:
            with pytest.raises(ckpt.CheckpointError) as e:
                ckpt.read_info(path)
            said[case] = str(e.value)
    assert "has no exact encoder and decoder" in said["ldr-first-stage-gan"]
    assert "has no exact encoder and decoder" in said["ldr-first-stage-itself"]
    assert "config.latent_dim must be an integer" in said["ldr-first-stage-config-wrong-type"]
    assert "not valid JSON" in said["ldr-first-stage-not-json"]
    assert "first_stage is empty" in said["ldr-autoencoder-without-first-stage"]


def test_scale_factor_and_counters(corpora):
    """0 is a scale factor not measured yet (stage 2 not started): it loads and reads as 1; a
    negative one or a negative step count is refused, naming what is wrong."""
    _, cases = corpora["latent-diffusion"]
    zero = [p for k, p, e in cases if k == "ld-scale" and e is None]
    assert len(zero) == 1
    e = ckpt.load(zero[0], device="cpu").engine
    assert float(e.nets["stats"].scale) == 0 and e.scale == 1.0
    negative = [p for k, p, e in cases if k == "ld-scale" and e == "scale"]
    for p in negative:
        with pytest.raises(ckpt.CheckpointError, match="scale factor is -"):
            ckpt.load(p, device="cpu")


def test_pixelcnn_before_positions_loads_as_trained(corpora):
    """A file without the `positions` field is read as positions=False and samples exactly as the
    engine it was saved from; the same file claiming positions is refused by shape."""
    path, _ = corpora["pixelcnn-before-positions"]
    assert "positions" not in ckpt.read_info(path).config
    loaded = ckpt.load(path, device="cpu").engine
    assert loaded.config.positions is False
    original = new_kinds.make_pixelcnn(positions=False)
    assert torch.equal(loaded.sample(3, seed=4), original.sample(3, seed=4))


SUBPROCESS = (  # (kind, case, command)
    ("latent-diffusion", "ld-scale", "sample"), ("latent-diffusion-reused", "ldr-first-stage-gan", "sample"),
    ("flow", "flip-body", "resume"), ("pixelcnn", "pix-positions-dropped", "video"),
    ("vq-pixelcnn-prior", "lie-shape-huge", "resume"),
)


def test_sample_as_main_py_subprocesses(corpora, tmp_path):
    cmds, chosen = [], []
    for i, (kind, case, how) in enumerate(SUBPROCESS):
        path = next(p for k, p, e in corpora[kind][1] if k == case and e is not None)
        chosen.append((kind, case))
        if how == "resume":
            cmds.append(["train", "--resume", path, "--epochs", "1", "--device", "cpu"])
        elif how == "video":
            cmds.append(["sample", "--checkpoint", path, "--n", "4", "--out", str(tmp_path / f"s{i}.png"),
                         "--video", str(tmp_path / f"v{i}.gif"), "--device", "cpu"])
        else:
            cmds.append(["sample", "--checkpoint", path, "--n", "4", "--out", str(tmp_path / f"s{i}.png"),
                         "--device", "cpu"])
    results = main_process.run_all(cmds, cwd=ROOT)
    for (kind, case), cmd, r in zip(chosen, cmds, results):
        err = r.stderr.strip()
        print(f"{kind:26s} {case:36s} {cmd[0]:6s} rc={r.rc} rss={r.peak_mb:.0f} MB  {err[-150:]}")
        assert r.rc == 2, (kind, case, r.stderr)
        assert "Traceback" not in r.stderr
        assert len(err.splitlines()) == 1 and err.startswith("error: "), (kind, case, r.stderr)
        assert r.peak_mb < 500, (kind, case, r.peak_mb)
    assert not list(tmp_path.iterdir())  # nothing written
