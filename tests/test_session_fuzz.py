"""Hostile session files (issue #17): a corpus generated here — bad JSON, deep nesting, wrong
types, huge numbers and arrays, NaN latents, a 10⁵-second sweep, unknown schema versions, a 1 GB
file, a FIFO — each is one SessionError line in process, before any work starts; a sample runs
through `python main.py export --session F` as real processes: exit 2, one line, no traceback,
peak RSS < 500 MB."""
import copy
import json
import os

import numpy as np
import pytest

import main_process

import engines
from engines import checkpoint as ckpt
from engines.export import session as sess
from engines.export.job import ExportSpec
from engines.export.render import FrameStyle
from engines.export.timeline import Sweep, Timeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RSS_LIMIT_KB = 500 * 1024


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """(checkpoint path, a valid session dict made with it)."""
    from conftest import make_blobs

    d = tmp_path_factory.mktemp("sess")
    ds = make_blobs(n=32, size=8)
    e = engines.create("vae", ds.spec, device="cpu", latent_dim=3, width=4, batch_size=8)
    path = str(d / "m.safetensors")
    ckpt.save(path, e, data=ds.describe())
    e = ckpt.load(path, device="cpu", with_optimizer=False).engine
    rng = np.random.default_rng(0)
    keys = [rng.standard_normal(3).astype(np.float32) for _ in range(3)]
    spec = ExportSpec("interpolate", FrameStyle(scale=2.0), timeline=Timeline(keys, seconds=0.25, fps=8.0))
    s = sess.Session(model=sess.model_entry(e, path), seed=1, export=spec,
                     keys=[{"label": "a", "latent": [float(x) for x in k]} for k in keys])
    return path, s.to_dict()


def _sweep(doc, seconds=1e5, fps=24.0):
    doc["export"] = ExportSpec("sweep", FrameStyle(), sweep=Sweep(np.zeros(3), np.ones(3), -3, 3, 1.0, 24.0)).to_dict()
    doc["export"]["sweep"].update(seconds=seconds, fps=fps)
    return doc


def corpus(doc: dict) -> list[tuple[str, object]]:
    """(name, content): content is bytes (written as is) or a function of a fresh copy of `doc`
    returning the document to write as JSON (text, so NaN/Infinity can be written)."""
    def m(fn):
        return lambda: fn(copy.deepcopy(doc))

    def put(path, value):
        def f(d):
            cur = d
            for k in path[:-1]:
                cur = cur[k]
            cur[path[-1]] = value
            return d
        return m(f)

    deep = '{"format": "latent-explorer-session", "schema_version": 1, "panels": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    mid = '{"format": "latent-explorer-session", "schema_version": 1, "panels": {"x": {"y": ' + "[" * 60 + "]" * 60 + "}}}"
    good_text = json.dumps(doc)
    return [
        ("empty", b""),
        ("not json", b"{not json"),
        ("truncated", good_text[: len(good_text) // 2].encode()),
        ("binary", bytes(range(256)) * 4),
        ("top-level list", b"[1, 2, 3]"),
        ("null", b"null"),
        ("deep nesting", deep.encode()),
        ("nesting past the limit", mid.encode()),
        ("wrong format", put(["format"], "something-else")),
        ("future schema", put(["schema_version"], 999)),
        ("schema as text", put(["schema_version"], "1")),
        ("schema zero", put(["schema_version"], 0)),
        ("seed text", put(["seed"], "abc")),
        ("seed huge", put(["seed"], 10**30)),
        ("seed negative", put(["seed"], -1)),
        ("integer of 5000 digits", good_text.replace('"seed": 1', '"seed": ' + "9" * 5000).encode()),
        ("created 1e400", good_text.replace('"seed": 1', '"seed": 1, "created": 1e400').encode()),
        ("NaN latent", good_text.replace('"latent": [', '"latent": [NaN, ', 1).encode()),
        ("Infinity in timeline", good_text.replace('"keys": [[', '"keys": [[Infinity, ', 1).encode()),
        ("keys not a list", put(["keys"], "abc")),
        ("keys of numbers", put(["keys"], [1, 2])),
        ("too many keys", put(["keys"], [{"latent": [0.0]}] * 2000)),
        ("latent of 300k values", put(["keys"], [{"latent": [0.0] * 300_000}])),
        ("latent of text", put(["keys"], [{"latent": ["a", "b"]}])),
        ("model a list", put(["model"], [1])),
        ("model path a number", put(["model", "path"], 5)),
        ("sampler nested", put(["sampler"], {"t": {"x": 1}})),
        ("bookmarks a dict", put(["bookmarks"], {"a": 1})),
        ("panel state a list", put(["panels"], {"manifold": [1, 2]})),
        ("label of 100k characters", put(["keys", 0, "label"], "x" * 100_000)),
        ("vector of text", put(["vectors"], [{"name": "v", "vector": "abc"}])),
        ("export kind unknown", put(["export", "kind"], "explode")),
        ("export kind a number", put(["export", "kind"], 5)),
        ("export a list", put(["export"], [1])),
        ("style a list", put(["export", "style"], [1])),
        ("scale zero", put(["export", "style", "scale"], 0)),
        ("scale huge", put(["export", "style", "scale"], 1e9)),
        ("cols huge", put(["export", "style", "cols"], 10**9)),
        ("sweep of 1e5 seconds", m(_sweep)),
        ("sweep at 1e9 fps", m(lambda d: _sweep(d, 1.0, 1e9))),
        ("sweep base/vector mismatch", m(lambda d: (_sweep(d, 1.0), d["export"]["sweep"].update(base=[0.0]))[0])),
        ("timeline fps zero", put(["export", "timeline", "fps"], 0)),
        ("timeline fps negative", put(["export", "timeline", "fps"], -24)),
        ("timeline seconds 1e9", put(["export", "timeline", "seconds"], 1e9)),
        ("timeline of one key", put(["export", "timeline", "keys"], [[0.0, 0.0, 0.0]])),
        ("timeline keys differ", put(["export", "timeline", "keys"], [[0.0], [0.0, 1.0]])),
        ("timeline keys missing", m(lambda d: (d["export"]["timeline"].pop("keys"), d)[1])),
        ("unknown easing", put(["export", "timeline", "easing"], "bounce")),
        ("1000 keys × 3600 s", put(["export", "timeline"], {"keys": [[0.0]] * 1000, "seconds": 3600, "fps": 240})),
        ("grid of a million", put(["export"], {"kind": "grid", "grid": {"n": 10**6}})),
        ("grid keys a million", put(["export"], {"kind": "grid", "grid": {"n": 4, "keys": 10**6}})),
        ("progress of 5000 checkpoints", put(["export"], {"kind": "progress", "progress": {"checkpoints": ["a"] * 5000}})),
        ("diffusion hold 1e7 s", put(["export"], {"kind": "diffusion", "diffusion": {"hold_s": 1e7}})),
        ("sampler steps 1e9", put(["export", "options"], {"steps": 10**9})),
    ]


def _write(tmp_path, i, content, doc) -> str:
    p = tmp_path / f"s{i:03d}.json"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(json.dumps(content()))
    return str(p)


def _one_line(msg: str) -> None:
    assert msg and "\n" not in msg and len(msg) < 400, msg


def test_the_good_session_loads(good, tmp_path):
    _path, doc = good
    p = tmp_path / "good.json"
    p.write_text(json.dumps(doc))
    s = sess.load(str(p))
    assert len(s.keys) == 3 and s.export.kind == "interpolate"


def test_hostile_sessions_are_one_line_errors_in_process(good, tmp_path):
    _path, doc = good
    cases = corpus(doc)
    assert len(cases) >= 30
    passed = []
    for i, (name, content) in enumerate(cases):
        path = _write(tmp_path, i, content, doc)
        with pytest.raises(sess.SessionError) as ex:
            sess.load(path)
        _one_line(str(ex.value))
        print(f"{name}: {str(ex.value).split(': ', 1)[-1]}")
        passed.append(name)
    print(f"{len(passed)}/{len(cases)} hostile sessions refused in one line")
    assert len(passed) == len(cases)


def test_oversized_fifo_and_folder_are_refused_before_reading(tmp_path):
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:  # a sparse 1 GB file: refused from its size, nothing read
        f.truncate(2**30)
    with pytest.raises(sess.SessionError, match="bytes"):
        sess.load(str(huge))
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # nobody writes: reading would hang forever
    with pytest.raises(sess.SessionError, match="regular file"):
        sess.load(str(fifo))
    with pytest.raises(sess.SessionError, match="folder"):
        sess.load(str(tmp_path))
    with pytest.raises(sess.SessionError, match="no such file"):
        sess.load(str(tmp_path / "missing.json"))


def run_cli(args: list[str], cwd) -> tuple[int, str, int]:
    """(exit status, stderr, peak RSS in KB of the `main.py` process): tests/main_process.py."""
    r = main_process.run(args, cwd=str(cwd))
    return r.rc, r.stderr, int(r.peak_mb * 1024)


SUBPROCESS_SAMPLE = ("sweep of 1e5 seconds", "deep nesting")


def test_hostile_sessions_through_the_export_command(good, tmp_path):
    path, doc = good
    cases = dict(corpus(doc))
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(2**30)
    files = [_write(tmp_path, i, cases[name], doc) for i, name in enumerate(SUBPROCESS_SAMPLE)] + [str(huge)]
    for f in files:
        rc, err, rss_kb = run_cli(["export", "--session", f, "--checkpoint", path, "--out", "x.gif",
                                   "--device", "cpu"], str(tmp_path))
        assert rc == 2, (f, rc, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (f, err)
        assert rss_kb < RSS_LIMIT_KB, (f, rss_kb)
        assert not (tmp_path / "x.gif").exists()
