"""Unsupervised edit directions (GANSpace, SeFa) on tiny trained models: orthonormal, sorted by
variance/eigenvalue, the top one moves the images more than random directions do, the same
numbers as a direct computation (scikit-learn's PCA, the weight's SVD); the refusals; the
`directions` command's JSON, strip PNG and one-line errors."""
import json

import numpy as np
import pytest
import torch

import engines
from engines import checkpoint as ckpt
from engines.latent import directions as dirs
from engines.latent.attributes import AttributeVector
from engines.spec import ImageSpec

from conftest import make_blobs

STEPS = 120


def _train(name, seed=0, **cfg):
    ds = make_blobs(n=96, size=16)
    e = engines.create(name, ds.spec, device="cpu", seed=seed, **cfg)
    for i in range(STEPS):
        e.train_step(ds.images[(i * 16) % 96:(i * 16) % 96 + 16])
    return e, ds


@pytest.fixture(scope="module")
def gan():
    e, ds = _train("gan", latent_dim=8, width=8, invert_steps=1, invert_restarts=1)
    e.calibrate()
    return e


@pytest.fixture(scope="module")
def vae():
    e, ds = _train("vae", latent_dim=6, width=8)
    return e, e.encode(ds.images).numpy()


def _sorted_desc(a):
    a = np.asarray(a)
    return bool(np.all(np.diff(a) <= 1e-9 * max(1.0, abs(a).max())))


@pytest.mark.parametrize("method", dirs.METHODS)
@pytest.mark.parametrize("model", ["gan", "vae"])
def test_orthonormal_sorted_and_the_top_direction_beats_random(method, model, gan, vae):
    engine, latents = (gan, None) if model == "gan" else vae
    found = dirs.compute(engine, method, 4, latents=latents)
    assert found.vectors.shape == (4, engine.latent_dim)
    assert found.orthonormal_error < 1e-6
    assert _sorted_desc(found.variance if method == "ganspace" else found.eigenvalues)
    if method == "ganspace":
        assert found.variance_ratio.sum() <= 1 + 1e-9 and found.eigenvalues is None
    else:
        assert found.variance is None and np.all(found.eigenvalues > 0)
    ref = dirs.reference_latents(engine, method, latents)
    assert np.allclose(found.sigma, (ref @ found.vectors.T).std(0))  # a step is one std of the model's latents
    effect = dirs.effects(engine, found.vectors, found.sigma)
    rnd = dirs.random_effect(engine, ref)
    assert effect.shape == (4,) and rnd > 0
    assert effect[0] > rnd, (effect, rnd)
    # The same sample set every time: the numbers repeat.
    assert np.allclose(dirs.compute(engine, method, 4, latents=latents).vectors, found.vectors)


def test_ganspace_on_encoded_latents_is_sklearns_pca(vae):
    from sklearn.decomposition import PCA

    engine, latents = vae
    found = dirs.ganspace(engine, 3, latents=latents)
    pca = PCA(3).fit(latents.astype(np.float64))
    cos = np.abs(np.sum(found.vectors * pca.components_, 1))
    assert np.all(cos > 0.999), cos
    assert np.allclose(found.variance, pca.explained_variance_, rtol=1e-6)
    assert np.allclose(found.variance_ratio, pca.explained_variance_ratio_, rtol=1e-6)


def test_sefa_is_the_weights_right_singular_vectors(gan):
    a = gan.sampler.head.weight.detach().double().numpy()
    _, s, vt = np.linalg.svd(a, full_matrices=False)
    found = dirs.sefa(gan, 5)
    assert np.allclose(found.eigenvalues, s[:5] ** 2, rtol=1e-6)
    assert np.all(np.abs(np.sum(found.vectors * vt[:5], 1)) > 0.9999)


def test_ganspace_on_a_gan_regresses_activation_pcs_to_z(gan):
    found = dirs.ganspace(gan, 4, samples=2048)
    assert found.source.startswith("first-layer activations") and found.meta["features"] > gan.latent_dim
    # The top direction is (before orthonormalising nothing changes it) the regression of PC 1 onto z.
    layer = gan.latent_layer()
    z = dirs.prior_latents(gan, 2048)
    with gan.inference():
        y = layer.features(torch.as_tensor(z)).double().numpy()
    from sklearn.decomposition import PCA

    x = PCA(4).fit_transform(y)
    u1 = np.linalg.lstsq(x, z - z.mean(0), rcond=None)[0][0]
    assert abs(found.vectors[0] @ u1 / np.linalg.norm(u1)) > 0.999


def test_a_conditional_gans_class_weights_are_left_alone():
    ds = make_blobs(n=48, size=8)
    e = engines.create("gan", ds.spec, device="cpu", latent_dim=4, width=4, n_classes=3, invert_steps=1)
    for method in dirs.METHODS:
        found = dirs.compute(e, method, 4)
        assert found.vectors.shape == (4, 7) and np.all(found.vectors[:, 4:] == 0)
        assert found.orthonormal_error < 1e-6
    with pytest.raises(dirs.DirectionsError, match="1 to 4 directions, asked for 5"):
        dirs.compute(e, "sefa", 5)


def test_what_each_engine_supports():
    spec = ImageSpec(1, 8, 8)
    pca = engines.create("pca", spec, device="cpu", n_components=3)
    assert dirs.support(pca, "ganspace") is None
    assert "no first linear layer" in dirs.support(pca, "sefa")
    for name, cfg in (("diffusion", {"width": 8, "levels": 2}),
                      ("vqvae", {"codebook_size": 4, "code_dim": 2, "width": 8})):
        e = engines.create(name, spec, device="cpu", **cfg)
        for m in dirs.METHODS:
            assert "not a vector" in dirs.support(e, m)
    vae = engines.create("vae", spec, device="cpu", latent_dim=3, width=8)
    with pytest.raises(dirs.DirectionsError, match="needs its encoded data"):
        dirs.ganspace(vae, 2)
    with pytest.raises(dirs.DirectionsError, match="unknown method"):
        dirs.compute(vae, "ica", 2)


def test_directions_are_attribute_vectors_one_sigma_long(vae):
    engine, latents = vae
    found = dirs.sefa(engine, 3, latents=latents)
    vs = found.to_vectors("model-x", engine.latent_shape, effect=[0.3, 0.2, 0.1])
    assert [v.name for v in vs] == ["SeFa 1", "SeFa 2", "SeFa 3"] and all(dirs.is_direction(v) for v in vs)
    assert np.allclose([v.norm for v in vs], found.sigma, rtol=1e-5)
    back = AttributeVector.from_dict(json.loads(json.dumps(vs[0].to_dict())))
    assert dirs.is_direction(back) and back.meta["effect"] == 0.3 and back.meta["eigenvalue"] > 0
    strips = dirs.strips(engine, latents[0], [v.vector for v in vs])
    assert strips.shape == (3, 7, 16, 16, 1) and strips.dtype == np.uint8
    assert np.array_equal(strips[:, 3], np.repeat(strips[:1, 3], 3, 0))  # the middle is the base image


# ---- the command -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, gan, vae):
    d = tmp_path_factory.mktemp("dirs")
    data = str(d / "blobs.npz")
    ds = make_blobs(n=96, size=16)
    np.savez(data, images=ds.images, labels=ds.labels)
    from engines.data import load_dataset

    info = load_dataset(data).describe()
    return {"gan": ckpt.save(str(d / "gan.safetensors"), gan, data=info),
            "vae": ckpt.save(str(d / "vae.safetensors"), vae[0], data=info),
            "diffusion": ckpt.save(str(d / "diff.safetensors"),
                                   engines.create("diffusion", ds.spec, device="cpu", width=8, levels=2), data=info)}


@pytest.mark.parametrize("model,method", [("gan", "ganspace"), ("vae", "ganspace"), ("vae", "sefa")])
def test_cli_json_and_strip(model, method, checkpoints, tmp_path, capsys):
    from PIL import Image

    from engines.cli.main import main

    png = str(tmp_path / "strip.png")
    assert main(["directions", "--checkpoint", checkpoints[model], "--method", method, "--n", "3",
                 "--out", png, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    d = np.asarray(doc["directions"])
    latent = 8 if model == "gan" else 6
    assert d.shape == (3, latent) and doc["k"] == 3 and doc["latent_size"] == latent
    assert doc["orthonormal_error"] < 1e-6 and abs(np.abs(d @ d.T - np.eye(3)).max() - doc["orthonormal_error"]) < 1e-9
    assert len(doc["effect"]) == 3 and doc["effect"][0] > doc["random_effect"] > 0
    if method == "ganspace":
        assert len(doc["variance"]) == 3 and _sorted_desc(doc["variance"]) and doc["eigenvalues"] is None
    else:
        assert doc["variance"] is None and _sorted_desc(doc["eigenvalues"])
    img = Image.open(png)
    assert img.size == (7 * 17 + 1, 3 * 17 + 1)  # 7 steps −3σ…+3σ, one row per direction, 1-px gaps


def test_cli_table_and_one_line_errors(checkpoints, tmp_path, capsys):
    from engines.cli.main import main

    assert main(["directions", "--checkpoint", checkpoints["gan"], "--method", "sefa", "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 sefa directions of a gan model" in out and "random unit directions" in out
    cases = [(["--checkpoint", checkpoints["gan"], "--method", "sefa", "--n", "9"], "gives at most 8 directions"),
             (["--checkpoint", checkpoints["diffusion"], "--method", "sefa"], "not a vector"),
             (["--checkpoint", str(tmp_path / "none.safetensors"), "--method", "sefa"], "none.safetensors"),
             (["--checkpoint", checkpoints["gan"], "--method", "sefa", "--out", str(tmp_path / "x.jpg")], ".png"),
             (["--checkpoint", checkpoints["gan"], "--method", "pca"], "invalid choice")]
    for args, msg in cases:
        assert main(["directions", *args]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
