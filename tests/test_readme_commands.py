"""Every `python main.py …` example in README.md runs as written, on a fresh folder without `runs/`
(placeholders F / DIFF / VQ / GAN are the bundled models; lengths are shrunk to keep the suite fast:
--minutes/--epochs of the training examples, --n and --size of the big ones, and a diffusion run's
end-of-training reconstruction check uses 2 DDIM steps instead of 20)."""
import glob
import os
import re
import shlex

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "assets", "models")
PLACEHOLDERS = {"F": os.path.join(MODELS, "vae-faces-64.safetensors"),
                "DIFF": os.path.join(MODELS, "diffusion-digits-28.safetensors"),
                "VQ": os.path.join(MODELS, "vqvae-faces-64.safetensors"),
                "GAN": os.path.join(MODELS, "gan-faces-64.safetensors")}
SHRINK = {"--minutes": "0.01", "--epochs": "0.02", "--n": "16", "--size": "128"}


def readme_commands() -> list[str]:
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            if line.startswith("python main.py "):
                cmds.append(line)
    return cmds


def _argv(cmd: str, session: str) -> list[str]:
    cmd = re.sub(r"\s*\[[^\]]*\]", "", cmd)  # optional flags shown as [--json]
    args = shlex.split(cmd)[2:]
    out = []
    for i, a in enumerate(args):
        prev = args[i - 1] if i else ""
        if a in PLACEHOLDERS and prev in ("--checkpoint", "--resume"):
            a = PLACEHOLDERS[a]
        elif prev in SHRINK and not (prev == "--size" and args[0] == "train"):
            a = SHRINK[prev] if float(a) > float(SHRINK[prev]) else a
        elif a == "session.json":
            a = session
        out.append(a)
    if out[:1] == ["train"] and "diffusion" in out:
        out += ["--set", "latent_steps=2"]
    if "run-*.safetensors" in out:  # the training-progress example: checkpoints of one run (the
        i = out.index("run-*.safetensors")  # README's own digits VAE, before and after --resume)
        out[i:i + 1] = sorted(glob.glob("runs/vae-digits*.safetensors")) * 2
        out[out.index("--checkpoint") + 1] = "runs/vae-digits.safetensors"
    return out


def test_the_readme_has_its_examples():
    cmds = readme_commands()
    assert len(cmds) >= 15
    assert any(c.startswith("python main.py train ") for c in cmds)
    assert any(c.startswith("python main.py export ") for c in cmds)


def test_every_readme_command_runs_as_written(tmp_path, monkeypatch, capsys):
    from engines.export import session as sess
    from engines.latent.cache import model_id
    from engines import checkpoint as ckpt
    from explorer.launcher import main

    monkeypatch.chdir(tmp_path)  # a fresh folder: `runs/` does not exist yet
    assert not os.path.exists("runs")
    loaded = ckpt.load(PLACEHOLDERS["F"], device="cpu", with_optimizer=False)
    z = [0.0] * loaded.engine.latent_dim
    from engines.export.job import ExportSpec
    from engines.export.timeline import Timeline

    import numpy as np

    keys = [np.zeros(len(z), np.float32), np.full(len(z), 0.5, np.float32)]
    session = sess.Session(model=sess.model_entry(loaded.engine, PLACEHOLDERS["F"], "vae-faces-64"),
                           keys=[{"label": "a", "latent": z}, {"label": "b", "latent": [0.5] * len(z)}],
                           export=ExportSpec("interpolate", timeline=Timeline(keys, seconds=0.5, fps=12)))
    assert session.model_id == model_id(loaded.engine)
    sess.save(str(tmp_path / "session.json"), session)
    failures = []
    for cmd in readme_commands():
        argv = _argv(cmd, str(tmp_path / "session.json"))
        rc = main(argv)
        err = capsys.readouterr().err
        if rc != 0:
            failures.append(f"{cmd}\n  ran as: {' '.join(argv)}\n  rc {rc}: {err.strip()[-300:]}")
    assert failures == [], "\n".join(failures)
    assert os.path.exists("runs/vae-digits.safetensors") and os.path.exists("walk.mp4")
    assert os.path.getsize("smile.gif") > 1000 and os.path.exists("usage.csv")
