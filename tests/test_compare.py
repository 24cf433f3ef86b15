"""Compare (issue #20, part 3), headless: which models can be compared, the table's columns per
family with real numbers from tiny models, the same seeds giving each model's own samples, the
maps of the same data points, stored evaluations reused, CSV written atomically, the CLI."""
import csv
import math
import os

import numpy as np
import pytest

from engines import checkpoint as ckpt
from engines import compare
from engines.data.dataset import to_uint8
from tests.compare_models import digits, make_models, save_model

N = 40  # samples scored: tiny, but every metric is computed
OPTIONS = compare.Options(n_metrics=N, seeds=3, seed=5, map_points=60, device="cpu")


def drive(gen):
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # the conftest's isolation, for this module's shared models
        mp.setenv("LATENT_EXPLORER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield make_models(tmp_path_factory.mktemp("compare-models"))


@pytest.fixture(scope="module")
def result(models, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATENT_EXPLORER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield drive(compare.run([models["vae"], models["gan"], models["diffusion"]], OPTIONS))


def test_refuses_models_of_different_data_sets(models, tmp_path, capsys):
    from engines.cli.main import main
    from engines.data import load_dataset

    other = save_model(tmp_path / "vae-digits-16.safetensors", "vae", load_dataset("digits", size=16), steps=0)
    with pytest.raises(compare.CompareError) as e:
        drive(compare.run([models["vae"], other]))
    msg = str(e.value)
    assert "\n" not in msg and "different data sets" in msg
    assert "vae-digits on digits (1,797 images, 8×8 grey)" in msg
    assert "vae-digits-16 on digits (1,797 images, 16×16 grey)" in msg
    assert main(["compare", models["vae"], other]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot compare models trained on different data sets") and "\n" not in err


@pytest.mark.parametrize("count", (1, 5))
def test_refuses_fewer_than_two_or_more_than_four(models, tmp_path, count):
    paths = [models["vae"]] + [save_model(tmp_path / f"m{i}.safetensors", "vae", digits(), seed=i, steps=0)
                               for i in range(count - 1)]
    with pytest.raises(compare.CompareError, match=f"pick 2 to 4 models to compare \\(got {count}\\)"):
        drive(compare.run(paths))
    with pytest.raises(compare.CompareError, match="picked twice"):
        compare.check_comparable([ckpt.read_info(models["vae"])] * 2)


def test_table_columns_per_family_with_real_numbers(result, models):
    table = result.table()
    keys = table.keys
    assert keys[:2] == ["model", "engine"]
    for k in ("cfid", "precision", "recall", "elbo_nats", "bpd", "parameters", "train_s", "ms_per_sample"):
        assert k in keys
    rows = {r["engine"]: r for r in table.rows}
    # Likelihood only where the family has one: −ELBO for the VAE, bits/dim for diffusion, none for the GAN.
    assert rows["vae"]["elbo_nats"] > 0 and rows["vae"]["bpd"] is None
    assert rows["diffusion"]["bpd"] > 0 and rows["diffusion"]["elbo_nats"] is None
    assert rows["gan"]["elbo_nats"] is None and rows["gan"]["bpd"] is None
    for fam, r in rows.items():
        assert math.isfinite(r["cfid"]) and r["cfid"] > 0, fam
        assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1, fam
        assert r["n_samples"] == N and r["ms_per_sample"] > 0 and r["train_s"] == 12.5
        engine = ckpt.load(models[fam], device="cpu", with_optimizer=False).engine
        assert r["parameters"] == engine.n_parameters() > 0
    # The same numbers engines.metrics computes for each model on its own.
    from engines.metrics import evaluate

    vae = ckpt.load(models["vae"], device="cpu", with_optimizer=False).engine
    own = evaluate(vae, digits(), n=N, seed=OPTIONS.seed, reference=False)
    assert rows["vae"]["cfid"] == pytest.approx(own["cfid"], rel=1e-6)
    assert rows["vae"]["elbo_nats"] == pytest.approx(own["elbo_nats"], rel=1e-4)


def test_a_column_no_model_fills_is_left_out(result):
    vae, gan, diffusion = result.models
    only = compare.Comparison(result.data, [vae, gan], result.options).table()
    assert "elbo_nats" in only.keys and "bpd" not in only.keys
    gans = compare.Comparison(result.data, [gan, gan], result.options).table()
    assert "elbo_nats" not in gans.keys and "bpd" not in gans.keys
    assert only.best("cfid") <= {0, 1} and len(only.best("cfid")) >= 1


def test_same_seeds_give_each_models_own_samples(result, models):
    for m in result.models:
        engine = ckpt.load(m.path, device="cpu", with_optimizer=False).engine
        own = to_uint8(engine.sample(3, seed=5))  # the model's own sample() from the same seed
        assert m.samples.shape == (3, 8, 8, 1)
        np.testing.assert_array_equal(m.samples, own)


def test_maps_show_the_same_data_points_for_every_model(result):
    idx = result.map_index
    data = digits()
    assert len(idx) == 60 and np.all(np.diff(idx) > 0) and set(idx) <= set(data.test_idx)
    np.testing.assert_array_equal(result.images, data.images[idx])
    np.testing.assert_array_equal(result.labels, data.labels[idx])
    for m in result.models:
        assert m.latents.shape[0] == 60 and m.coords.shape == (60, 2) and np.all(np.isfinite(m.coords))
    # PCA coordinates: centred, first axis carries at least as much spread as the second.
    c = result.models[0].coords
    assert abs(c.mean(0)).max() < 1e-3 and c[:, 0].std() >= c[:, 1].std() - 1e-6


def test_a_stored_evaluation_with_the_same_count_is_reused(models, tmp_path):
    stored = {"cfid": 12.345, "precision": 0.5, "recall": 0.25, "coverage": 1.0, "elbo_nats": 99.0,
              "n_samples": N, "evaluated_on": "digits", "evaluated_at": 1.7e9}
    data = digits()
    a = save_model(tmp_path / "a.safetensors", "vae", data, metrics=stored, steps=0)
    b = save_model(tmp_path / "b.safetensors", "vae", data, seed=1, metrics={**stored, "n_samples": 2 * N}, steps=0)
    comp = drive(compare.run([a, b], compare.Options(n_metrics=N, seeds=1, map_points=0, device="cpu")))
    ra, rb = comp.table().rows
    assert comp.models[0].metrics_source == "stored" and ra["cfid"] == 12.345 and ra["elbo_nats"] == 99.0
    assert comp.models[1].metrics_source == "computed" and rb["cfid"] != 12.345 and rb["n_samples"] == N
    assert comp.models[0].coords is None and len(comp.map_index) == 0


def test_csv_is_written_atomically_and_reads_back(result, tmp_path):
    table = result.table()
    out = tmp_path / "cmp.csv"
    out.write_text("old")
    assert compare.write_csv(str(out), table) == str(out)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    with open(out, newline="", encoding="utf-8") as f:
        back = list(csv.DictReader(f))
    assert list(back[0]) == table.keys and len(back) == 3
    for r, b in zip(table.rows, back):
        for k in table.keys:
            if r[k] is None:
                assert b[k] == ""
            elif isinstance(r[k], float):
                assert float(b[k]) == r[k]
            else:
                assert b[k] == str(r[k])
    from engines.atomic import WriteError

    (tmp_path / "a-folder.csv").mkdir()
    with pytest.raises(WriteError):  # one line for the user, the target untouched, no temp left
        compare.write_csv(str(tmp_path / "a-folder.csv"), table)
    assert (tmp_path / "a-folder.csv").is_dir() and not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_closing_the_run_stops_it_between_stages(models):
    gen = compare.run([models["vae"], models["gan"]], OPTIONS)
    seen = [next(gen) for _ in range(3)]
    assert [p.message.split(":")[0] for p in seen] == ["loading digits (1,797 images, 8×8 grey)", "vae-digits", "vae-digits"]
    assert seen[1].message == "vae-digits: loading" and 0 <= seen[1].fraction <= seen[2].fraction < 0.5
    gen.close()  # a worker's Cancel lands here
    with pytest.raises(StopIteration):
        next(gen)


def test_cli_prints_the_table_and_writes_csv_and_samples(models, tmp_path, capsys):
    from PIL import Image

    from engines.cli.main import main

    out, png = tmp_path / "t.csv", tmp_path / "s.png"
    rc = main(["compare", models["vae"], models["gan"], "--n", str(N), "--seeds", "2", "--device", "cpu",
               "--csv", str(out), "--samples", str(png)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "digits (1,797 images, 8×8 grey): 2 models" in text and "−ELBO (nats/image)" in text and "ms per sample" in text
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [r["engine"] for r in rows] == ["vae", "gan"] and rows[1]["elbo_nats"] == ""
    assert Image.open(png).size == (2 * 9 + 1, 2 * 9 + 1)  # 2 rows (models) × 2 seeds of 8 px, 1 px gaps
    assert main(["compare", models["vae"], models["gan"], "--csv", str(tmp_path / "t.txt")]) == 2
