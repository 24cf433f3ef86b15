"""`python main.py export …`: the Export panel's exports without a display (never imports Qt).

    export --checkpoint F --out walk.mp4                     # looping slerp through 4 prior latents
    export --checkpoint F --session S.json --out walk.gif     # regenerate what the app exported
    export --checkpoint F --kind sweep --attribute smiling --out smile.mp4
    export --checkpoint F --kind grid --n 64 --out grid.png
    export --checkpoint F --kind progress --checkpoints a.safetensors b.safetensors --out train.mp4
    export --checkpoint F --out latents.h5 | projections.csv  # data: latents, labels, projections
"""
from __future__ import annotations

import os
import sys
import time

from engines.export.writers import ExportError

KINDS = ("interpolate", "sweep", "diffusion", "grid", "progress", "codebook")


def add_parser(sub) -> None:
    x = sub.add_parser("export", help="export a video, image or data file (the Export panel, headless)")
    x.add_argument("--checkpoint", help="the model (default with --session: the checkpoint the session names)")
    x.add_argument("--session", help="a session file saved by the app: regenerate its export")
    x.add_argument("--kind", choices=KINDS, help="what to export (default interpolate; .h5/.csv: latents and "
                   "projections, or with --kind codebook a VQ model's code usage)")
    x.add_argument("--out", required=True, help="file.mp4 | .gif | .png (one image, or a folder of frames) | .h5 | .csv")
    x.add_argument("--seed", type=int, default=0, help="seed of the prior latents (keys, sweep base, grid)")
    x.add_argument("--keys", type=int, default=4, help="interpolate: prior latents to pass through")
    x.add_argument("--seconds", type=float, help="seconds per segment (interpolate), sweep length, or per checkpoint")
    x.add_argument("--fps", type=float, help="frames per second (default 24; diffusion 12)")
    x.add_argument("--method", default="slerp", help="lerp, slerp or nslerp")
    x.add_argument("--easing", default="smoothstep", help="linear, smoothstep or ease_in_out_cubic")
    x.add_argument("--no-loop", action="store_true", help="end on the last key instead of returning to the first")
    x.add_argument("--size", type=int, help="frame width in pixels (default: 4× the model's images, 512 at most)")
    x.add_argument("--scale", type=float, help="output pixels per model pixel instead of --size (e.g. 8: 64 px → 512 px)")
    x.add_argument("--smooth", action="store_true", help="bicubic upscaling instead of nearest-neighbour")
    x.add_argument("--labels", action="store_true", help="caption each frame")
    x.add_argument("--vector", help="sweep: a vectors .json saved by the Arithmetic panel")
    x.add_argument("--vector-name", help="sweep: which vector of that file (default: the first)")
    x.add_argument("--attribute", help="sweep: make the vector from this attribute of the data set")
    x.add_argument("--from", dest="s_from", type=float, default=-3.0, help="sweep: first strength")
    x.add_argument("--to", dest="s_to", type=float, default=3.0, help="sweep: last strength")
    x.add_argument("--n", type=int, help="grid/progress: images per frame (default 16); diffusion: seeds (default 4)")
    x.add_argument("--cols", type=int, help="grid columns (default: square)")
    x.add_argument("--show", choices=("x_t", "x0", "both"), default="both",
                   help="diffusion: the noisy image x_t, the predicted clean image x̂₀, or both per step")
    x.add_argument("--checkpoints", nargs="+", help="progress: checkpoints of one run, in any order")
    x.add_argument("--data", help="data set for .h5/.csv and --attribute (default: the model's own)")
    x.add_argument("--umap", action="store_true", help=".h5/.csv: add UMAP coordinates (slow the first time)")
    x.add_argument("--set", action="append", metavar="KEY=VALUE", help="sampling option, e.g. temperature=0.8")
    x.add_argument("--save-session", metavar="S.json", help="also write a session file that regenerates this export")
    x.add_argument("--force", action="store_true", help="use a session made with another model anyway")
    x.add_argument("--device", default="auto")
    x.set_defaults(func=cmd_export)


class Bar:
    def __init__(self, stream=sys.stderr):
        self.stream, self.tty, self._last = stream, stream.isatty(), 0.0

    def __call__(self, p) -> None:
        now = time.monotonic()
        final = p.fraction is not None and p.fraction >= 1.0
        if not final and now - self._last < (0.2 if self.tty else 5.0):
            return
        self._last = now
        frac = p.fraction or 0.0
        line = f"[{'#' * int(24 * frac)}{'-' * (24 - int(24 * frac))}] {100 * frac:5.1f}% {p.message}"
        self.stream.write(("\r" + line.ljust(80) + ("\n" if final else "")) if self.tty else line + "\n")
        self.stream.flush()


def cmd_export(a) -> int:
    from engines import checkpoint as ckpt
    from engines.cli.common import _ensure_parent, UsageError

    session = None
    if a.session:
        from engines.export import session as sess

        session = sess.load(a.session)
        if a.kind:
            raise UsageError("--session already says what to export; drop --kind")
    if a.size and a.scale:
        raise UsageError("give --size or --scale, not both")
    if (a.size is not None and a.size < 1) or (a.scale is not None and not 0 < a.scale <= 64):
        raise UsageError("--size must be positive and --scale in (0, 64]")
    path = a.checkpoint or (None if session is None else _session_model(session))
    if not path:
        raise UsageError("export needs --checkpoint F (or --session S naming an existing checkpoint)")
    ext = os.path.splitext(a.out)[1].lower()
    if ext not in (".mp4", ".gif", ".png", ".h5", ".hdf5", ".csv"):
        raise UsageError("--out must end in .mp4, .gif, .png, .h5 or .csv")
    _ensure_parent(a.out)
    loaded = ckpt.load(path, device=a.device, with_optimizer=False)
    engine = loaded.engine
    if ext in (".h5", ".hdf5", ".csv"):
        return _export_data(a, engine, loaded.info, ext)
    if session is not None:
        from engines.export import session as sess

        if not a.force:
            sess.check_model(session, engine)
        if session.export is None:
            raise UsageError(f"{a.session}: the session holds no export")
        spec = session.export
        if a.size or a.scale:
            spec.style = _style_for(engine, spec, a.size, a.scale)
    else:
        spec = build_spec(a, engine, loaded.info)
    if a.save_session:
        _save_session(a.save_session, engine, path, spec, a.seed)
    return _run(engine, spec, a.out)


def _session_model(session) -> str:
    from engines.export import session as sess

    return sess.resolve_model(session)


def _run(engine, spec, out) -> int:
    from engines.latent.progress import run
    from engines.export.job import run_export

    t0 = time.perf_counter()
    try:
        r = run(run_export(engine, spec, out), Bar())
    except ValueError as e:
        raise ExportError(str(e)) from None
    dt = time.perf_counter() - t0
    w, h = r.size
    print(f"wrote {r.frames} frame{'s' * (r.frames != 1)} of {w}×{h} at {r.fps:g} fps to {r.path} "
          f"({r.frames / max(dt, 1e-9):.1f} frames/s; decode {r.timing.decode_s:.2f} s, write {r.timing.write_s:.2f} s)",
          file=sys.stderr)
    return 0


def _sampling(a, engine) -> dict:
    from engines import config as cfgmod
    from engines.cli.common import _sampling_options

    return _sampling_options(engine, cfgmod.parse_set_args(a.set))


def _style_for(engine, spec, width: int | None = None, scale: float | None = None):
    """The spec's frame style resized to a frame `width` in pixels, or to `scale` output pixels
    per model pixel (cells stay whole pixels either way)."""
    from engines.export.render import FrameStyle

    st = spec.style
    cells, cols = 1, None
    if spec.kind in ("grid", "progress"):
        cells = spec.grid.n if spec.kind == "grid" else spec.progress.n
        cols = st.cols if cells > 1 and st.cols > 1 else None
    elif spec.kind == "diffusion":  # one row (or two: x_t above x̂₀) of `n` seeds
        cells = cols = spec.diffusion.n
    try:
        if scale is not None:
            cols = min(int(cols or int(round(cells ** 0.5 + 0.4999))), cells) if cells > 1 else 1
            return FrameStyle(max(1, round(scale * engine.spec.width)) / engine.spec.width, st.smooth, cols, st.gap,
                              st.labels)
        return FrameStyle.for_width(engine.spec, width, cells, cols, st.smooth, st.gap, st.labels)
    except ValueError as e:
        raise ExportError(str(e)) from None


def build_spec(a, engine, info):
    """An ExportSpec from the command line's options."""
    from engines.cli.common import UsageError
    from engines.export.job import ExportSpec, GridSpec, ProgressSpec
    from engines.export.render import FrameStyle
    from engines.export.timeline import Sweep, Timeline, prior_latents

    kind = a.kind or "interpolate"
    opts = _sampling(a, engine)
    a.fps = a.fps if a.fps is not None else (12.0 if kind == "diffusion" else 24.0)
    a.n = a.n if a.n is not None else (4 if kind == "diffusion" else 16)
    if "sample" not in engine.capabilities and kind in ("interpolate", "grid", "progress"):
        raise UsageError(f"{engine.name} models cannot draw latents from a prior")
    try:
        if kind == "interpolate":
            if a.keys < 2:
                raise UsageError("--keys must be at least 2")
            keys = prior_latents(engine, a.keys, a.seed, **opts)
            part = Timeline(list(keys), a.method, a.easing, a.seconds or 2.0, a.fps, not a.no_loop,
                            [f"key {i + 1} (seed {a.seed})" for i in range(a.keys)])
            spec = ExportSpec(kind, FrameStyle(), timeline=part, options=opts)
        elif kind == "sweep":
            vec, name = _sweep_vector(a, engine, info)
            base = prior_latents(engine, 1, a.seed, **opts)[0]
            part = Sweep(base, vec, a.s_from, a.s_to, a.seconds or 4.0, a.fps, a.easing, not a.no_loop, name)
            spec = ExportSpec(kind, FrameStyle(), sweep=part, options=opts)
        elif kind == "grid":
            if a.n < 1:
                raise UsageError("--n must be positive")
            still = os.path.splitext(a.out)[1].lower() == ".png"
            g = GridSpec(a.n, a.seed, 1 if still else max(2, a.keys), a.seconds or 2.0, a.fps, a.method, a.easing)
            spec = ExportSpec(kind, FrameStyle(cols=a.cols or 1), grid=g, options=opts)
        elif kind == "progress":
            if not a.checkpoints:
                raise UsageError("--kind progress needs --checkpoints A B …")
            for p in a.checkpoints:
                if not os.path.isfile(p):
                    raise UsageError(f"{p}: no such file")
            spec = ExportSpec(kind, FrameStyle(cols=a.cols or 1, labels=True),
                              progress=ProgressSpec(list(a.checkpoints), a.n, a.seed, a.seconds or 0.5, a.fps),
                              options=opts)
        else:
            spec = _diffusion_spec(a, engine)
    except ValueError as e:
        if isinstance(e, UsageError):
            raise
        raise ExportError(str(e)) from None
    width = a.size or min(512, 4 * engine.spec.width * spec.style.cols if spec.kind == "diffusion" else
                          4 * engine.spec.width * (1 if spec.kind not in ("grid", "progress") else
                                                   (a.cols or int(round((spec.grid or spec.progress).n ** 0.5)))))
    spec.style = _style_for(engine, spec, None if a.scale else width, a.scale)
    spec.style.smooth, spec.style.labels = a.smooth, a.labels or spec.kind == "progress"
    return spec


def _diffusion_spec(a, engine):
    from engines.export.job import DiffusionSpec, ExportSpec
    from engines.export.render import FrameStyle

    if "trajectory" not in engine.capabilities:
        raise ExportError(f"--kind diffusion needs a diffusion model, not a {engine.name}")
    if a.n < 1:
        raise ExportError("--n must be positive")
    return ExportSpec("diffusion", FrameStyle(cols=a.n), options=_sampling(a, engine),
                      diffusion=DiffusionSpec(a.n, a.seed, a.show, a.fps, a.seconds if a.seconds is not None else 1.0))


def _sweep_vector(a, engine, info):
    from engines.cli.common import UsageError
    from engines.latent import attributes
    from engines.latent.cache import model_id

    if a.vector and a.attribute:
        raise UsageError("give --vector or --attribute, not both")
    if a.vector:
        vs = attributes.load_vectors(a.vector, model_id(engine), engine.latent_shape, force=a.force)
        if not vs:
            raise UsageError(f"{a.vector}: holds no vectors")
        if a.vector_name:
            vs = [v for v in vs if v.name == a.vector_name]
            if not vs:
                raise UsageError(f"{a.vector}: no vector named '{a.vector_name}'")
        return vs[0].vector, vs[0].name
    if not a.attribute:
        raise UsageError("--kind sweep needs --vector FILE.json or --attribute NAME")
    ls = _latents(a, engine, info)
    if a.attribute not in ls.attributes and a.attribute not in ls.label_names:
        have = ", ".join(list(ls.attributes) + list(ls.label_names)) or "none"
        raise UsageError(f"the data set has no attribute '{a.attribute}' (it has: {have})")
    v = (attributes.from_attribute(ls, a.attribute, quality=False) if a.attribute in ls.attributes
         else attributes.from_label(ls, a.attribute, quality=False))
    return v.vector, a.attribute


def _latents(a, engine, info):
    from engines.cli.common import _load_data, _training_data
    from engines.latent.cache import open_latents

    data = _load_data(a.data or _training_data(info), spec=engine.spec)
    if "encode" not in engine.capabilities:
        raise ExportError(f"{engine.name} models cannot encode images")
    return open_latents(engine, data)


def _export_data(a, engine, info, ext) -> int:
    from engines.latent import projection
    from engines.latent.progress import run
    from engines.export import data as dx

    if a.kind == "codebook":
        return _export_codebook(a, engine, info)
    if a.kind or a.session:
        raise ExportError(f"{ext} exports hold data (latents, projections; or --kind codebook), "
                          f"not --kind {a.kind}" if a.kind else f"{ext} exports hold data, not a --session")
    ls = _latents(a, engine, info)
    projs = {"pca": projection.pca_projection(ls.latents).coords}
    if a.umap:
        projs["umap"] = run(projection.run_umap(ls.latents), Bar()).coords
    if ext == ".csv":
        dx.write_projection_csv(a.out, ls, projs)
    else:
        dx.write_latents(a.out, ls, projs, {"checkpoint": os.path.abspath(a.checkpoint or "")})
    print(f"wrote latents {ls.latents.shape} of {ls.data_name} with {', '.join(projs)} coordinates to {a.out}",
          file=sys.stderr)
    return 0


def _export_codebook(a, engine, info) -> int:
    from engines.cli.common import _load_data, _training_data
    from engines.latent.cache import model_id
    from engines.export import data as dx

    if "codebook" not in engine.capabilities:
        raise ExportError(f"--kind codebook needs a model with a codebook (VQ-VAE), not a {engine.name}")
    data = _load_data(a.data or _training_data(info), spec=engine.spec)
    usage = dx.codebook_usage(engine, data.images)
    dx.write_codebook_usage(a.out, usage, model_id(engine))
    print(f"wrote the usage of {usage['codebook_size']} codes over {len(data)} images of {data.name} to {a.out} "
          f"(perplexity {usage['perplexity']:.1f}, {usage['dead']} unused)", file=sys.stderr)
    return 0


def _save_session(path, engine, ckpt_path, spec, seed) -> None:
    from engines.export import session as sess

    s = sess.Session(model=sess.model_entry(engine, ckpt_path), seed=seed, sampler=dict(spec.options), export=spec)
    if spec.timeline is not None:
        s.keys = [{"label": lab, "latent": [float(x) for x in k]}
                  for k, lab in zip(spec.timeline.keys, spec.timeline.labels + [""] * len(spec.timeline.keys))]
    sess.save(path, s)
