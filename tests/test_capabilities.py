"""Capabilities: one documented set of names in engines.base, every registered engine's
declaration checked against what it implements, undeclared abilities refused with a clear error,
and the likelihood capability deciding what `evaluate` and the library report."""
import inspect

import pytest
import torch

import engines
from engines.base import CAPABILITIES, LIKELIHOOD_METRICS, Engine, check_capabilities
from engines.spec import ImageSpec

SMALL = {"pca": {"n_components": 2}, "ae": {"latent_dim": 2, "width": 8}, "vae": {"latent_dim": 2, "width": 8},
         "gan": {"latent_dim": 2, "width": 8, "invert_steps": 1, "invert_restarts": 1},
         "diffusion": {"width": 8, "levels": 2, "latent_steps": 2},
         "latent-diffusion": {"width": 8, "levels": 1, "latent_steps": 2, "ae_width": 4, "latent_channels": 1},
         "vqvae": {"codebook_size": 4, "code_dim": 2, "width": 8, "prior_dim": 8, "prior_layers": 1, "prior_heads": 2},
         "flow": {"steps": 2, "width": 8},
         "pixelcnn": {"hidden": 4, "layers": 1, "kernel": 3}}
# What each family can do, written out by hand: a change to a declaration must change this too.
EXPECTED = {
    "pca": {"encode", "encode_exact", "decode", "sample", "log_prior"},
    "ae": {"encode", "encode_exact", "decode", "sample", "denoise", "latent_layer"},
    "vae": {"encode", "encode_exact", "decode", "sample", "likelihood", "log_prior", "latent_layer"},
    "gan": {"encode", "encode_approx", "decode", "sample", "invert", "truncate", "log_prior", "latent_layer"},
    "diffusion": {"encode", "encode_approx", "decode", "sample", "likelihood", "trajectory"},
    "latent-diffusion": {"encode", "encode_approx", "decode", "sample", "trajectory"},
    "vqvae": {"encode", "encode_exact", "decode", "sample", "codebook", "code_prior"},
    "flow": {"encode", "encode_exact", "decode", "sample", "likelihood", "log_prior"},
    "pixelcnn": {"sample", "likelihood", "raster"},
}


def make(name, **kw):
    return engines.create(name, ImageSpec(1, 8, 8), device="cpu", **{**SMALL[name], **kw})


def test_registered_engines_declare_what_they_implement():
    assert sorted(EXPECTED) == sorted(engines.names())
    for name in engines.names():
        cls = engines.engine_class(name)
        caps = cls.capabilities
        assert caps == EXPECTED[name], name
        assert caps <= CAPABILITIES.keys()
        for cap in caps:  # every method a capability needs is there, and callable or a property
            for method in CAPABILITIES[cap][1]:
                attr = inspect.getattr_static(cls, method, None)
                assert attr is not None and (callable(attr) or isinstance(attr, (property, staticmethod))), (name, cap, method)
        # Methods of undeclared capabilities are absent, so no caller can reach them by accident.
        for cap in CAPABILITIES.keys() - caps:
            own = [m for m in CAPABILITIES[cap][1] if m not in ("likelihood",) and hasattr(cls, m)]
            assert not own, (name, cap, own)
        if "likelihood" in caps:
            assert cls.likelihood is not Engine.likelihood
        if "encode" in caps:  # an engine that encodes says how (PixelCNN has no latent to encode to)
            assert ("encode_exact" in caps) != ("encode_approx" in caps)


def _engine_class(caps, **methods):
    return type("Probe", (Engine,), {"name": "probe", "capabilities": frozenset(caps), **methods})


def test_declarations_are_checked_when_a_class_is_defined():
    with pytest.raises(TypeError, match=r"unknown capabilities \['teleport'\]"):
        _engine_class({"decode", "teleport"})
    with pytest.raises(TypeError, match="exactly one of 'encode_exact', 'encode_approx'"):
        _engine_class({"encode", "decode"})
    with pytest.raises(TypeError, match="exactly one"):
        _engine_class({"encode", "encode_exact", "encode_approx"})
    with pytest.raises(TypeError, match="but not 'encode'"):
        _engine_class({"encode_approx"})
    with pytest.raises(TypeError, match="'codebook' but has no code_vectors"):
        _engine_class({"codebook"}, codebook_size=property(lambda s: 4), encode_indices=lambda s, x: x, decode_indices=lambda s, i: i,
                      code_usage=lambda s, x: x, cell_size=lambda s: (1, 1), cell_box=lambda s, i, j: (0, 0, 1, 1))
    with pytest.raises(TypeError, match="'likelihood' but has no likelihood"):
        _engine_class({"decode", "likelihood"})  # the base class's refusal does not count
    with pytest.raises(TypeError, match="frozenset"):
        check_capabilities(type("Raw", (), {"capabilities": {"decode"}}))
    ok = _engine_class({"decode", "log_prior"}, log_prior=lambda s, z: z)
    assert ok.capabilities == {"decode", "log_prior"}


def test_capabilities_are_documented():
    for cap, (doc, methods) in CAPABILITIES.items():
        assert doc and isinstance(methods, tuple), cap
    assert set(LIKELIHOOD_METRICS) == {"elbo_nats", "iwae_nats", "iwae_k", "bpd"}
    e = make("ae")
    assert e.can("denoise") and not e.can("codebook")
    with pytest.raises(KeyError, match="unknown capability 'fly'"):
        e.can("fly")


def test_undeclared_abilities_raise_a_clear_error():
    Probe = _engine_class({"decode"}, build=lambda s: {"w": torch.nn.Linear(2, 16)},
                          latent_shape=property(lambda s: (2,)),
                          _decode=lambda s, z: torch.sigmoid(s.nets["w"](z)).view(len(z), 1, 4, 4))
    p = Probe(ImageSpec(1, 4, 4), device="cpu")
    assert p.decode(torch.zeros(3, 2)).shape == (3, 1, 4, 4)
    with pytest.raises(NotImplementedError, match="probe models cannot encode images"):
        p.encode(torch.rand(1, 1, 4, 4))
    with pytest.raises(NotImplementedError, match="probe models cannot sample"):
        p.sample(2)
    with pytest.raises(NotImplementedError, match="probe models define no likelihood"):
        p.likelihood(torch.rand(1, 1, 4, 4))
    assert p.evaluate(torch.rand(2, 1, 4, 4)) == {}  # no encode, no likelihood: nothing to measure
    p.after_load()  # optional hooks are there and do nothing
    p.prepare_checkpoint(torch.rand(1, 1, 4, 4))
    assert p.epoch_steps is None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_evaluate_reports_a_likelihood_exactly_when_declared(name):
    e = make(name)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    if e.closed_form:
        e.fit(x)
    out = e.evaluate(x, quick=True)
    reported = set(out) & set(LIKELIHOOD_METRICS)
    if "likelihood" in e.capabilities:
        assert reported and all(out[k] > 0 for k in reported)
        assert {k: out[k] for k in reported} == pytest.approx(e.likelihood(x, quick=True))
    else:
        assert not reported
        with pytest.raises(NotImplementedError, match="no likelihood"):
            e.likelihood(x)


def test_metrics_note_models_without_a_likelihood(tiny_dataset):
    from engines.metrics import evaluate

    ds = tiny_dataset(n=40, size=8)
    out = evaluate(make("ae"), ds, n=8, reference=False)
    assert any("ae models define no likelihood" in m for m in out["notes"])
    out = evaluate(make("vae"), ds, n=8, reference=False)
    assert not any("likelihood" in m for m in out["notes"]) and out["elbo_nats"] > 0


def test_library_reports_a_likelihood_from_the_capability():
    from explorer import catalog

    assert catalog.has_likelihood("vae") is True and catalog.has_likelihood("diffusion") is True
    assert catalog.has_likelihood("gan") is False and catalog.has_likelihood("pca") is False
    assert catalog.has_likelihood("no-such-engine") is None
    m = {"test_elbo_nats": 280.0, "test_psnr": 25.0, "neg_elbo": 281.0}
    assert catalog.metrics_line(m, likelihood=True).replace("\u00a0", " ") == "−ELBO 280.0 · PSNR 25.0 dB"
    assert catalog.metrics_line(m, likelihood=False).replace("\u00a0", " ") == "PSNR 25.0 dB"
    tip = "\n".join(catalog.metrics_tooltip(m, likelihood=False))
    assert "−ELBO" not in tip and "Likelihood: none" in tip
    assert "Likelihood: not measured yet" in "\n".join(catalog.metrics_tooltip({"test_psnr": 25.0}, likelihood=True))
    assert "Likelihood" not in "\n".join(catalog.metrics_tooltip(m, likelihood=True))
