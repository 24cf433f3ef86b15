"""engines.atomic: a file appears whole or not at all, and an old file survives a failed rewrite."""
import json
import os
import stat

import pytest

from engines import atomic


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "doc.json"
    atomic.write_json(str(path), {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic.replacing(str(path)) as tmp:
            with open(tmp, "w") as f:
                f.write('{"v": 2, "trunc')
            raise RuntimeError("disk full halfway")
    assert json.loads(path.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["doc.json"]


def test_success_replaces_with_the_users_permissions(tmp_path):
    path = tmp_path / "sub" / "blob.bin"  # the folder is created
    old = os.umask(0o022)
    try:
        atomic.write_bytes(str(path), b"abc", durable=True)
    finally:
        os.umask(old)
    assert path.read_bytes() == b"abc"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # not mkstemp's 0600
    atomic.write_bytes(str(path), b"xyz")
    assert path.read_bytes() == b"xyz" and sorted(os.listdir(path.parent)) == ["blob.bin"]


@pytest.mark.parametrize("name,n", [("walk.gif", 3), ("frames.png", 3), ("one.png", 1)])
def test_exports_get_the_users_permissions(tmp_path, name, n):
    import numpy as np

    from engines.export.writers import open_writer

    old = os.umask(0o022)
    try:
        with open_writer(str(tmp_path / name), fps=10, n_frames=n) as w:
            w.append(np.zeros((n, 8, 8, 3), np.uint8))
            path = w.commit()
    finally:
        os.umask(old)
    want = 0o755 if os.path.isdir(path) else 0o644
    assert stat.S_IMODE(os.stat(path).st_mode) == want, path
    assert not [p for p in os.listdir(tmp_path) if p.startswith(atomic.PREFIX)]
