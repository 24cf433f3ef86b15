"""The README's attribute-arithmetic pictures, from the bundled faces VAE.

1. The "sunglasses" vector Δ = mean(z | sunglasses) − mean(z | none) over the model's training
   data (posterior means, through the latent cache), its quality, and the strip z + s·Δ for
   s = −4 … 4 on test faces that have no sunglasses (one per label) →
   assets/readme/sunglasses_strip.png (first column: the input face).
2. "smiling woman − neutral woman + neutral man" (b is the neutral woman nearest to a in latent
   space, `attributes.matched_analogy`), decoded, with its 5 nearest data images; three draws →
   assets/readme/analogy.png.

Besides looking at the PNGs, the script measures what they show: the mean brightness of the eye
region (where the data set draws sunglasses) along the decoded strip, against real faces with and
without sunglasses; and, over 40 analogy draws, what the faces data set's label classifier
(engines.metrics.classifier, trained once and cached) calls the decoded results, against what it
calls c alone. Numbers go to stdout and bench/results/sunglasses.json.

    python bench/sunglasses.py [--model assets/models/vae-faces-64.safetensors] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

import common
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from engines import checkpoint as ckpt
from engines.data import load_dataset
from engines.data.dataset import to_uint8
from engines.data.faces import EYE_REGION
from engines.latent import attributes as attr
from engines.latent import cache
from engines.metrics.classifier import get_classifier

BUNDLED = os.path.join(common.ROOT, "assets", "models", "vae-faces-64.safetensors")
OUT = os.path.join(common.ROOT, "assets", "readme")
S = np.linspace(*attr.S_RANGE, 9)
SCALE = 2  # 64 px faces drawn at 128 px, nearest neighbour
DRAWS, SHOWN = 40, 3  # analogy draws measured, and drawn in the figure
BG = (255, 255, 255)
INK = (30, 30, 30)


_UNICODE = True  # False when only Pillow's built-in font is found (no −, Δ, ‖ glyphs)


def font(size: int):
    global _UNICODE
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)  # searched in the system font folders
    except OSError:
        _UNICODE = False
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def t(text: str) -> str:
    """The text, or an ASCII version when the font has no glyphs for these signs."""
    if _UNICODE:
        return text
    return text.replace("−", "-").replace("Δ", "D").replace("‖", "|").replace("·", "*")


def decode(engine, z) -> np.ndarray:
    return to_uint8(engine.decode(np.asarray(z, np.float32)))


def eye_brightness(images: np.ndarray) -> np.ndarray:
    """Mean brightness (0–1) of the eye region of each uint8 (N, H, W, C) image."""
    n, h, w, _ = images.shape
    top, bottom, left, right = EYE_REGION
    crop = images[:, int(top * h):int(bottom * h), int(left * w):int(right * w)]
    return crop.reshape(n, -1).mean(1) / 255.0


def big(img: np.ndarray) -> Image.Image:
    pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
    return pil.resize((pil.width * SCALE, pil.height * SCALE), Image.Resampling.NEAREST)


def text_centered(draw, box, text, f, fill=INK):
    x0, y0, x1, y1 = box
    tw = draw.textlength(t(text), font=f)
    draw.text((x0 + (x1 - x0 - tw) / 2, y0), t(text), font=f, fill=fill)


def strip_figure(rows, row_labels, title: str) -> Image.Image:
    """rows: list of (input uint8 image, (9, H, W, C) decoded strip)."""
    side = rows[0][0].shape[0] * SCALE
    gap, left, top, caption = 6, 150, 56, 22
    cols = 1 + len(S)
    width = left + cols * (side + gap) + gap + 10
    height = top + len(rows) * (side + gap) + 10
    fig = Image.new("RGB", (width, height), BG)
    d = ImageDraw.Draw(fig)
    f_title, f = font(20), font(16)
    d.text((10, 8), t(title), font=f_title, fill=INK)
    heads = ["input"] + [("s = 0" if s == 0 else f"s = {s:+g}").replace("-", "−") for s in S]
    for j, h in enumerate(heads):
        x = left + j * (side + gap) + (gap if j else 0)
        text_centered(d, (x, top - caption, x + side, top), h, f, fill=INK if j else (110, 110, 110))
    for i, ((inp, imgs), label) in enumerate(zip(rows, row_labels)):
        y = top + i * (side + gap)
        for k, line in enumerate(label.split("\n")):
            d.text((10, y + side / 2 - 18 + 20 * k), line, font=f, fill=INK)
        fig.paste(big(inp), (left, y))
        for j, im in enumerate(imgs):
            fig.paste(big(im), (left + (j + 1) * (side + gap) + gap, y))
    return fig


def analogy_figure(examples, title: str) -> Image.Image:
    """examples: list of (a, b, c, result, neighbours (5, H, W, C), neighbour captions, verdict)."""
    side = examples[0][0].shape[0] * SCALE
    gap, sign, top, caption = 6, 34, 60, 40
    width = 10 + 4 * side + 3 * sign + 30 + 5 * (side + gap) + 10
    height = top + len(examples) * (side + caption + gap) + 6
    fig = Image.new("RGB", (width, height), BG)
    d = ImageDraw.Draw(fig)
    f_title, f, f_sign, f_small = font(20), font(16), font(28), font(14)
    d.text((10, 8), t(title), font=f_title, fill=INK)
    heads = ["a: smiling woman", "b: neutral woman", "c: neutral man", "a − b + c"]
    xs = [10 + k * (side + sign) for k in range(4)]
    for x, h in zip(xs, heads):
        text_centered(d, (x - 20, top - 24, x + side + 20, top), h, f)
    nx = xs[3] + side + 30
    text_centered(d, (nx, top - 24, nx + 5 * (side + gap), top), "its 5 nearest data images", f)
    for i, (a, b, c, res, nbs, caps, verdict) in enumerate(examples):
        y = top + i * (side + caption + gap)
        for x, im in zip(xs, (a, b, c, res)):
            fig.paste(big(im), (x, y))
        text_centered(d, (xs[3] - 30, y + side + 3, xs[3] + side + 30, y + side + 20), verdict, f_small)
        for k, s in enumerate("−+="):
            text_centered(d, (xs[k] + side, y + side / 2 - 18, xs[k + 1], y + side / 2), s, f_sign)
        for k, (im, cap) in enumerate(zip(nbs, caps)):
            x = nx + k * (side + gap)
            fig.paste(big(im), (x, y))
            text_centered(d, (x - 3, y + side + 3, x + side + 3, y + side + 20), cap, f_small)
    return fig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=BUNDLED)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not os.path.isfile(a.model):
        print(f"{a.model}: no such model (build it with python assets/build_models.py vae-faces-64)", file=sys.stderr)
        return 2
    loaded = ckpt.load(a.model, device="cpu", with_optimizer=False)
    engine, info = loaded.engine, loaded.info
    if info.data.get("name") != "faces":
        print(f"{a.model}: trained on {info.data.get('name')!r}, not the built-in faces", file=sys.stderr)
        return 2
    ds = load_dataset("faces", spec=engine.spec)
    ls = cache.open_latents(engine, ds)

    # 1. The sunglasses vector and its strip.
    v = attr.from_attribute(ls, "sunglasses")
    q = v.quality
    sg = ls.attributes["sunglasses"]
    test = ls.test_idx
    faces = [int(test[(sg[test] == 0) & (ls.labels[test] == lab)][0]) for lab in range(len(ls.label_names))]
    rows, bright = [], []
    for i in faces:
        imgs = decode(engine, attr.strip(ls.latents[i], v, S))
        rows.append((ds.images[i], imgs))
        bright.append(eye_brightness(imgs))
    bright = np.array(bright)
    real_with = float(eye_brightness(ds.images[test[sg[test] == 1]]).mean())
    real_without = float(eye_brightness(ds.images[test[sg[test] == 0]]).mean())
    labels = [f"#{i}\n{ls.label_names[ls.labels[i]]}" for i in faces]
    os.makedirs(a.out, exist_ok=True)
    strip_path = os.path.join(a.out, "sunglasses_strip.png")
    strip_figure(rows, labels, f"z + s·Δ, Δ = mean(z | sunglasses) − mean(z | none); ‖Δ‖ = {v.norm:.2f}, "
                 f"effect size d = {q.effect_size:.1f}; test faces without sunglasses").save(strip_path)

    # 2. The analogy: 40 draws judged by the data set's label classifier, the first 3 drawn.
    names = ls.label_names
    groups = [np.flatnonzero(ls.labels == names.index(n)) for n in ("smiling woman", "neutral woman", "neutral man")]
    picks = [attr.matched_analogy(ls.latents, *groups, seed=seed) for seed in range(DRAWS)]
    z = ls.latents
    results = decode(engine, [z[ia] - z[ib] + z[ic] for ia, ib, ic in picks])
    clf = get_classifier(ds, progress=lambda m: print(m, file=sys.stderr))
    called = [names[k] for k in clf.predict(results)]
    called_c = [names[k] for k in clf.predict(decode(engine, [z[ic] for _, _, ic in picks]))]
    examples, nn_labels = [], []
    for seed, (ia, ib, ic) in enumerate(picks):
        res = attr.analogy_result(z[ia], z[ib], z[ic], z, engine=None, k=5)
        labs = [names[ls.labels[j]] for j in res.neighbours]
        nn_labels.append(labs)
        if seed < SHOWN:
            examples.append((ds.images[ia], ds.images[ib], ds.images[ic], results[seed], ds.images[res.neighbours],
                             labs, f"classifier: {called[seed]}"))
    analogy_path = os.path.join(a.out, "analogy.png")
    n_smiling = sum(c == "smiling man" for c in called)
    analogy_figure(examples, f"smiling woman − neutral woman + neutral man (b: the neutral woman nearest to a); "
                   f"{n_smiling} of {DRAWS} results classified 'smiling man'").save(analogy_path)

    # Report.
    table = [{"quantity": k, "value": val} for k, val in (
        ("‖Δ‖", v.norm), ("groups (with / without)", f"{q.n_a} / {q.n_b}"), ("effect size d", q.effect_size),
        ("cosine agreement", q.cosine),
        ("cosine, shuffled groups", f"{q.cosine_shuffled:.4f} ± {q.cosine_shuffled_std:.4f}"),
        ("cosine, random directions", q.cosine_random), ("z vs shuffles", q.z_score),
        ("held-out accuracy", q.heldout_accuracy), ("verdict", q.verdict))]
    print(f"sunglasses vector on {os.path.basename(a.model)} ({len(ls)} faces, latent {ls.dim}):")
    print(common.table(table, ["quantity", "value"]))
    print("\neye-region brightness of the decoded strip (mean over the faces; sunglasses are dark):")
    bright_rows = [{"s": f"{s:+g}", "brightness": float(b)} for s, b in zip(S, bright.mean(0))]
    print(common.table(bright_rows, ["s", "brightness"]))
    print(f"real test faces: with sunglasses {real_with:.3f}, without {real_without:.3f}")
    print(f"\nanalogy smiling woman − neutral woman + neutral man, {DRAWS} draws "
          f"(label classifier, test accuracy {clf.info.get('test_acc', float('nan')):.3f}):")
    print(f"  results classified as {dict(Counter(called).most_common())}")
    print(f"  c alone (decoded) classified as {dict(Counter(called_c).most_common())}")
    share = Counter(lab for labs in nn_labels for lab in labs)
    print(f"  labels of the results' 5 nearest data latents: {dict(share.most_common())}")
    print(f"wrote {os.path.relpath(strip_path, common.ROOT)} and {os.path.relpath(analogy_path, common.ROOT)}")
    common.save("sunglasses", {
        "model": os.path.relpath(a.model, common.ROOT), "faces": faces, "vector_norm": v.norm,
        "quality": {**q.__dict__, "verdict": q.verdict, "z_score": q.z_score},
        "s": S.tolist(), "eye_brightness_per_face": bright.tolist(),
        "eye_brightness_real": {"with": real_with, "without": real_without},
        "analogy_picks": picks, "analogy_classified": called, "analogy_c_classified": called_c,
        "analogy_neighbour_labels": nn_labels,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
