"""Issue #17, checkpoints: a corpus of malformed files generated from a tiny saved checkpoint
(tests/checkpoint_corpus.py). Every case is a one-line CheckpointError in process (load and,
for the library, a listing that keeps going); a sample runs through `main.py` as real
subprocesses (exit 2, one line on stderr, no traceback, peak RSS < 500 MB). Plus: body bit
flips are caught by the hash, a file from before the hash opens (with one warning), the
bundled models open, and a runs folder with good and bad files lists every file."""
from __future__ import annotations

import collections
import glob
import logging
import os
import time

import numpy as np
import pytest

import main_process
import torch

import engines
from engines import checkpoint as ckpt
from engines.spec import ImageSpec
from tests import checkpoint_corpus as corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = ImageSpec(1, 8, 8)


def tiny_engine():
    torch.manual_seed(0)
    e = engines.create("ae", SPEC, device="cpu", latent_dim=2, width=4)
    e.train_step(torch.rand(4, 1, 8, 8))
    return e


def tiny_save(path, e):
    return ckpt.save(path, e, data={"name": "tiny"}, metrics={"mse": 0.1},
                     thumbnail=np.zeros((8, 8, 1), np.uint8))


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    src = str(folder / "good.safetensors")
    tiny_save(src, tiny_engine())
    ckpt.load(src, device="cpu")  # the source itself is fine
    (folder / "bad").mkdir()
    return src, corpus.build(src, str(folder / "bad"), tiny_engine, tiny_save)


def test_corpus_size_and_kinds(cases):
    _, cs = cases
    kinds = collections.Counter(k.split("-")[0] for k, _, _ in cs)
    print(f"\ncorpus: {len(cs)} malformed checkpoints: {dict(kinds)}")
    assert len(cs) >= 300
    for kind in ("truncate", "flip", "lie", "meta", "field", "nonfinite", "file"):
        assert kinds[kind] >= 8, kind


def test_every_case_is_a_one_line_checkpoint_error(cases):
    _, cs = cases
    t0 = time.perf_counter()
    failures = []
    for kind, path, expect in cs:
        try:
            ckpt.load(path, device="cpu")
        except ckpt.CheckpointError as e:
            msg = str(e)
            if "\n" in msg or not msg or (expect and expect not in msg):
                failures.append(f"{kind} {os.path.basename(path)}: message {msg!r} (expected {expect!r})")
        except Exception as e:  # noqa: BLE001
            failures.append(f"{kind} {os.path.basename(path)}: {type(e).__name__}: {e}"[:300])
        else:
            failures.append(f"{kind} {os.path.basename(path)}: ACCEPTED")
    print(f"\n{len(cs) - len(failures)}/{len(cs)} refused with a one-line CheckpointError "
          f"in {time.perf_counter() - t0:.1f} s")
    assert not failures, "\n".join(failures[:40])


def test_resume_path_and_info_refuse_too(cases):
    """`train --resume` loads with the optimizer state; the library reads only the header: both
    refuse cleanly (read_info may accept a file whose damage is only in the tensor bytes)."""
    _, cs = cases
    for kind, path, _ in cs[::7]:
        with pytest.raises(ckpt.CheckpointError):
            ckpt.load(path, device="cpu", with_optimizer=True)
        try:
            ckpt.read_info(path)
        except ckpt.CheckpointError as e:
            assert "\n" not in str(e)


def test_body_bit_flips_are_caught_by_the_hash(cases):
    _, cs = cases
    flips = [(p, e) for k, p, e in cs if k == "flip-body"]
    assert len(flips) >= 50
    for path, _ in flips:
        with pytest.raises(ckpt.CheckpointError, match="weights damaged: hash mismatch"):
            ckpt.load(path, device="cpu")


def test_legacy_file_without_hash_opens_with_one_warning(cases, tmp_path, caplog):
    src, _ = cases
    n, header, body = corpus.split(open(src, "rb").read())
    legacy = tmp_path / "legacy.safetensors"
    legacy.write_bytes(corpus.join(corpus.legacy(header), body))
    with caplog.at_level(logging.WARNING, logger="engines.checkpoint"):
        a = ckpt.load(str(legacy), device="cpu").engine
        ckpt.load(str(legacy), device="cpu")
    said = [r for r in caplog.records if "content hash" in r.getMessage()]
    assert len(said) == 1
    b = ckpt.load(src, device="cpu").engine
    for (k, v), (_, w) in zip(a.nets.state_dict().items(), b.nets.state_dict().items()):
        assert torch.equal(v, w), k
    # A legacy file is refused if its weights hold NaN: the hash is not the only check.
    e = tiny_engine()
    with torch.no_grad():
        next(e.nets.parameters()).view(-1)[0] = float("nan")
    tiny_save(str(tmp_path / "nan.safetensors"), e)
    n, header, body = corpus.split(open(tmp_path / "nan.safetensors", "rb").read())
    (tmp_path / "nan-legacy.safetensors").write_bytes(corpus.join(corpus.legacy(header), body))
    with pytest.raises(ckpt.CheckpointError, match="NaN/Inf: model/"):
        ckpt.load(str(tmp_path / "nan-legacy.safetensors"), device="cpu")


def test_saved_files_carry_a_hash_and_round_trip(cases, tmp_path):
    src, _ = cases
    info = ckpt.read_info(src)
    assert info.format_version == ckpt.FORMAT_VERSION == 2
    with ckpt.CheckedFile(src) as f:
        assert len(f.meta[ckpt.HASH_KEY]) == 64
    ckpt.update(src, metrics={"extra": 1.0})  # rewritten: the new hash verifies
    assert ckpt.load(src, device="cpu").info.metrics["extra"] == 1.0


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "assets", "models", "*.safetensors"))))
def test_bundled_models_open(path):
    loaded = ckpt.load(path, device="cpu", with_optimizer=False)
    assert loaded.engine.name == loaded.info.engine
    assert ckpt.read_thumbnail(path) is not None
    # Verified on every load: no "written before checkpoints carried a content hash" warning for
    # the app's own files (nine of them printed it on every launch until they were rewritten).
    assert loaded.info.format_version == ckpt.FORMAT_VERSION
    with ckpt.CheckedFile(path) as f:
        assert len(f.meta[ckpt.HASH_KEY]) == 64


def test_library_lists_good_and_bad_files(cases, tmp_path, monkeypatch):
    from explorer import catalog

    src, cs = cases
    runs = tmp_path / "runs"
    runs.mkdir()
    good = [runs / "good-a.safetensors", runs / "good-b.safetensors"]
    for g in good:
        g.write_bytes(open(src, "rb").read())
    picked = {}
    for kind, path, _ in cs:
        picked.setdefault(kind, path)
    bad = 0
    for kind, path in picked.items():
        dst = runs / f"bad-{kind}.safetensors"
        if os.path.islink(path) or not os.path.isfile(path):
            if kind == "file-fifo":
                os.mkfifo(dst)
            elif kind == "file-folder":
                dst.mkdir()
            elif kind in ("file-device", "file-dangling-link"):
                os.symlink(os.readlink(path), dst)
            else:
                continue
        else:
            dst.write_bytes(open(path, "rb").read())
        bad += 1
    monkeypatch.setenv("LATENT_EXPLORER_MODELS", str(tmp_path / "no-bundled"))
    t0 = time.perf_counter()
    entries = catalog.scan(str(runs), [])
    assert time.perf_counter() - t0 < 20  # never hangs (the FIFO)
    by_name = {os.path.basename(e.path): e for e in entries}
    assert len(entries) == bad + 2
    for g in good:
        assert by_name[g.name].ok and by_name[g.name].thumbnail is not None
    unreadable = [e for e in entries if not e.ok]
    readable_bad = [e for e in entries if e.ok and e.name.startswith("bad-")]
    # The listing reads headers only: damage in the weights' bytes (hash, NaN) or in the optimizer
    # state shows when the model is opened, which is then refused (the app's dialog).
    for e in readable_bad:
        with pytest.raises(ckpt.CheckpointError):
            ckpt.load(e.path, device="cpu")
    assert len(unreadable) + len(readable_bad) == bad and len(unreadable) > 30
    for e in unreadable:
        assert e.error and "\n" not in e.error
        assert e.summary().startswith("cannot open:")
    for e in entries:
        e.summary(), e.tooltip()
    assert catalog.default_entry(entries) is not None


# ---- real subprocesses ---------------------------------------------------------------------
SAMPLE_KINDS = ("truncate-tensor", "flip-body", "flip-header", "lie-dtype-F16", "lie-offset-beyond",
                "field-config", "field-config-inflated", "nonfinite", "file-png", "file-fifo")


def _run_all(commands, folder):
    """Every `main.py` command at once (tests/main_process.py); (returncode, stderr, peak RSS in MB)."""
    return [(r.rc, r.stderr, r.peak_mb) for r in main_process.run_all(commands, cwd=ROOT)]


def test_sample_runs_as_main_py_subprocesses(cases, tmp_path):
    _, cs = cases
    chosen = []
    for want in SAMPLE_KINDS:
        chosen.append(next((k, p) for k, p, _ in cs if k == want))
    assert len(chosen) >= 10
    cmds = []
    for i, (kind, path) in enumerate(chosen):
        if i % 3 == 2:  # `train --resume` takes the same path, with the optimizer state
            cmds.append(["train", "--resume", path, "--epochs", "1", "--device", "cpu"])
        else:
            cmds.append(["sample", "--checkpoint", path, "--n", "4",
                         "--out", str(tmp_path / f"s{i}.png"), "--device", "cpu"])
    results = _run_all(cmds, str(tmp_path))
    for (kind, path), cmd, (rc, err, rss) in zip(chosen, cmds, results):
        print(f"{kind:18s} {cmd[0]:6s} rc={rc} rss={rss:.0f} MB  {err.strip()}")
        assert rc == 2, (kind, err)
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), (kind, err)
        assert rss < 500, (kind, rss)


def test_app_open_shows_one_line_dialog(cases, make_window, qtbot):
    """File → Open of a bad file: a dialog (the window's show_error) with the one-line reason,
    whether the header is refused at once or the weights when the model loads."""
    _, cs = cases
    w = make_window()
    fifo = next(p for k, p, _ in cs if k == "file-fifo")
    w.open_path(fifo)
    assert w.errors and "not a regular file" in w.errors[-1][1] and "\n" not in w.errors[-1][1]
    flipped = next(p for k, p, _ in cs if k == "flip-body")
    n = len(w.errors)
    w.open_path(flipped)  # the header is fine: refused by the loader, in its worker
    qtbot.waitUntil(lambda: len(w.errors) > n, timeout=20_000)
    title, message = w.errors[-1]
    assert "hash mismatch" in message and "\n" not in message
    assert w.session.engine is None
