"""A corpus of malformed data files, generated at test time (seeded, no network, no pickle module).

`corpus()` lists cases `(name, make, expect, huge)`: `make(folder)` writes the file (or folder,
FIFO, link) and returns the path to load; `expect` is a regex the one-line DataError must match;
`huge` marks files whose headers declare far more data than they hold, where the test also
checks that nothing big was allocated.
"""
from __future__ import annotations

import gzip
import io
import os
import struct
import zipfile

import h5py
import numpy as np
from PIL import Image

RNG = np.random.default_rng(17)
IMG = RNG.integers(0, 256, (6, 8, 8), dtype=np.uint8)
LAB = np.array([0, 1, 2, 0, 1, 2])
HUGE = (10 ** 7, 28, 28)  # 7.3 GB of uint8 declared


# ---------------------------------------------------------------- raw builders

def npy(shape=IMG.shape, descr="|u1", body=None, version=(1, 0), header=None) -> bytes:
    """A .npy file with a header written by hand, so it can lie about shape and dtype."""
    if header is None:
        header = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    head = header.encode("latin1")
    size_fmt, pre = ("<H", 10) if version == (1, 0) else ("<I", 12)
    pad = (-(pre + len(head) + 1)) % 64
    head = head + b" " * pad + b"\n"
    if body is None:
        body = IMG.tobytes() if tuple(shape) == IMG.shape and descr == "|u1" else b"\x00" * 64
    return b"\x93NUMPY" + bytes(version) + struct.pack(size_fmt, len(head)) + head + body


def npy_of(a: np.ndarray) -> bytes:
    fh = io.BytesIO()
    np.save(fh, a, allow_pickle=False)
    return fh.getvalue()


def npz(members: dict, compress=False) -> bytes:
    fh = io.BytesIO()
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        for name, value in members.items():
            zf.writestr(name if name.endswith(".npy") or "." in name else name + ".npy",
                        value if isinstance(value, bytes) else npy_of(np.asarray(value)))
    return fh.getvalue()


def pickle_payload(marker: str) -> bytes:
    """Protocol-0 opcodes that, if anything ever unpickled them, would create `marker`."""
    return b"cbuiltins\nopen\n(V" + marker.encode() + b"\nVw\ntR."


def idx(shape, code=0x08, body=None) -> bytes:
    head = struct.pack(">BBBB", 0, 0, code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
    if body is None:
        body = np.zeros(shape, ">u1").tobytes()
    return head + body


def png_bytes(size=(8, 8)) -> bytes:
    fh = io.BytesIO()
    Image.new("L", size, 100).save(fh, "PNG")
    return fh.getvalue()


def png_declaring(w: int, h: int) -> bytes:
    """A PNG whose IHDR declares w×h with a valid CRC (and no pixel data worth the name)."""
    import zlib

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def patch_zip_size(data: bytes, value: int) -> bytes:
    """Overwrite the uncompressed size of the first member in the central directory."""
    i = data.index(b"PK\x01\x02")
    return data[:i + 24] + struct.pack("<I", value) + data[i + 28:]


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


# ---------------------------------------------------------------- writers for the cases

def _file(name, data):
    def make(d):
        p = os.path.join(d, name)
        with open(p, "wb") as fh:
            fh.write(data() if callable(data) else data)
        return p
    return make


def _h5(name, build, cut=None, patch=None):
    def make(d):
        p = os.path.join(d, name)
        with h5py.File(p, "w") as f:
            build(f)
        if cut is not None or patch is not None:
            data = open(p, "rb").read()
            data = patch(data) if patch else data[:cut(len(data))]
            open(p, "wb").write(data)
        return p
    return make


def _break_global_heap(data: bytes) -> bytes:
    """Grow the second string in the first global heap collection so the free-space record that
    follows reads as size 0: HDF5 itself loops forever reading such a file."""
    g = data.index(b"GCOL")
    at = g + 16 + 16 + 8 + 8  # header, object 1 (header + 1 byte padded to 8), object 2's size field
    assert struct.unpack("<H", data[at - 8:at - 6])[0] == 2
    return data[:at] + struct.pack("<Q", 161) + data[at + 8:]


def _folder(name, files):
    """files: {relative path: bytes or a callable(path) that makes it}."""
    def make(d):
        root = os.path.join(d, name)
        os.makedirs(root)
        for rel, data in files.items():
            p = os.path.join(root, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            if callable(data):
                data(p)
            else:
                open(p, "wb").write(data)
        return root
    return make


def _fifo(name):
    def make(d):
        p = os.path.join(d, name)
        os.mkfifo(p)
        return p
    return make


def _link(name, target):
    def make(d):
        p = os.path.join(d, name)
        os.symlink(target, p)
        return p
    return make


def _idx_pair(name, images: bytes, labels: bytes, gz=False):
    def make(d):
        op = gzip.compress if gz else (lambda b: b)
        ext = ".gz" if gz else ""
        open(os.path.join(d, f"{name}-labels-idx1-ubyte{ext}"), "wb").write(op(labels))
        p = os.path.join(d, f"{name}-images-idx3-ubyte{ext}")
        open(p, "wb").write(op(images))
        return p
    return make


def _gz_stream_runs_on(d):
    p = os.path.join(d, "long-images-idx3-ubyte.gz")
    with gzip.open(p, "wb", compresslevel=1) as fh:
        fh.write(idx((2, 8, 8)))
        zeros = b"\x00" * (1 << 20)
        for _ in range(64):  # 64 MB past the declared data, about 64 KB compressed
            fh.write(zeros)
    return p


def _pickled_npy(d):
    return _file("pickled.npy", npy((2,), "|O", pickle_payload(os.path.join(d, "PWNED"))))(d)


def _pickled_npz(key):
    def make(d):
        members = {"images": IMG, key: npy((6,), "|O", pickle_payload(os.path.join(d, "PWNED")))}
        return _file(f"pickled-{key}.npz", npz(members))(d)
    return make


# ---------------------------------------------------------------- the corpus

def corpus() -> list[tuple]:
    good_npz = npz({"images": IMG, "labels": LAB})
    good_npz_c = npz({"images": IMG, "labels": LAB}, compress=True)
    good_npy = npy_of(IMG)
    good_idx = idx((6, 8, 8), body=IMG.tobytes())
    huge_npy = npy(HUGE)
    cases = []

    def add(name, make, expect=".", huge=False):
        cases.append((name, make, expect, huge))

    # .npy: truncations, lying headers, wrong dtypes and values
    for cut in (0, 3, 8, 11, 40, 127, len(good_npy) - 1):
        add(f"npy-cut-{cut}", _file(f"cut{cut}.npy", good_npy[:cut]), "npy|header|truncated|empty|EOF")
    add("npy-trailing", _file("long.npy", good_npy + b"\x00" * 10), "longer than its header")
    add("npy-bad-magic", _file("magic.npy", b"\x93NUMPX" + good_npy[6:]), "npy|magic")
    add("npy-version-9", _file("v9.npy", npy(version=(9, 0))), "version|npy")
    add("npy-v2", _file("v2.npy", npy(HUGE, version=(2, 0))), "truncated", True)
    add("npy-huge", _file("huge.npy", huge_npy), "truncated.*7.3 GB", True)
    add("npy-overflow", _file("overflow.npy", npy((2 ** 62, 2 ** 62, 28))), "truncated", True)
    add("npy-negative-shape", _file("neg.npy", npy((-5, 8, 8))), "negative")
    add("npy-lying-dtype", _file("dtype.npy", npy(IMG.shape, "<f8", IMG.tobytes())), "truncated")
    add("npy-header-not-dict", _file("hdr.npy", npy(header="[1, 2, 3]")), "header")
    add("npy-header-garbage", _file("junk.npy", npy(header="{'descr': <<<")), "header")
    add("npy-header-nested", _file("nest.npy", npy(header="(" * 3000 + ")" * 3000)), "header")
    add("npy-header-huge-length", _file("hlen.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 2 ** 31) + b"{"), "header")
    add("npy-unknown-descr", _file("descr.npy", npy(descr="<q9")), "header")
    add("npy-object-pickle", _pickled_npy, "Python objects")
    add("npy-structured", _file("rec.npy", npy_of(np.zeros((2, 8, 8), [("a", "u1"), ("b", "f4")]))), "dtype")
    add("npy-complex", _file("cplx.npy", npy_of(np.zeros((2, 8, 8), np.complex64))), "dtype complex64")
    add("npy-datetime", _file("dt.npy", npy_of(np.zeros((2, 8, 8), "M8[s]"))), "dtype")
    add("npy-strings", _file("str.npy", npy_of(np.full((2, 8, 8), "a"))), "dtype")
    add("npy-bool", _file("bool.npy", npy_of(np.zeros((2, 8, 8), bool))), "bool")
    add("npy-nan", _file("nan.npy", npy_of(np.full((2, 8, 8), np.nan, np.float32))), "NaN or infinite")
    add("npy-inf", _file("inf.npy", npy_of(np.full((2, 8, 8), -np.inf))), "NaN or infinite")
    add("npy-float-range", _file("f.npy", npy_of(np.full((2, 8, 8), 3.0))), r"\[0, 1\]")
    add("npy-int-range", _file("i16.npy", npy_of(np.full((2, 8, 8), 4000, np.int16))), "0-255")
    add("npy-int-negative", _file("ineg.npy", npy_of(np.full((2, 8, 8), -1, np.int8))), "0-255")
    add("npy-1d", _file("flat.npy", npy_of(np.zeros(64, np.uint8))), "shape")
    add("npy-5d", _file("5d.npy", npy_of(np.zeros((1, 1, 2, 2, 2), np.uint8))), "shape")
    add("npy-4-channels", _file("rgba.npy", npy_of(np.zeros((2, 8, 8, 4), np.uint8))), "channels")
    add("npy-no-images", _file("none.npy", npy_of(np.zeros((0, 8, 8), np.uint8))), "no images")
    add("npy-too-small", _file("tiny.npy", npy_of(np.zeros((3, 2, 2), np.uint8))), "too small")

    # .npz: zip damage, lying members, objects, labels, names, attributes
    for cut in (0, 10, 30, len(good_npz) // 2, len(good_npz) - 10):
        add(f"npz-cut-{cut}", _file(f"cut{cut}.npz", good_npz[:cut]), "npz|zip|truncated|npy|empty")
    add("npz-cut-compressed", _file("cutc.npz", good_npz_c[:len(good_npz_c) * 2 // 3]), "npz|zip|truncated|damaged")
    add("npz-crc", _file("crc.npz", flip(good_npz, 200)), "damaged|CRC|npy|header")
    add("npz-crc-compressed", _file("crcc.npz", flip(good_npz_c, 90)), "damaged|CRC|npy|header|npz")
    add("npz-empty-zip", _file("empty.npz", npz({})), "no 'images'")
    add("npz-no-images", _file("pics.npz", npz({"pictures": IMG})), "no 'images'.*pictures")
    add("npz-not-npy-member", _file("txt.npz", npz({"images.txt": b"hello"})), "no 'images'")
    add("npz-huge-member", _file("huge.npz", npz({"images": huge_npy})), "truncated.*7.3 GB", True)
    add("npz-huge-compressed", _file("hugec.npz", npz({"images": npy(HUGE, body=b"\x00" * 4096)}, True)),
        "truncated", True)
    add("npz-size-lie-stored", _file("lie.npz", patch_zip_size(npz({"images": huge_npy}), 2 ** 32 - 1)),
        "sizes|damaged", True)
    add("npz-size-lie-deflated", _file("liec.npz", patch_zip_size(npz({"images": good_npy}, True), 2 ** 32 - 1)),
        "compressed data can hold", True)
    add("npz-images-pickle", _pickled_npz("images"), "Python objects")
    add("npz-labels-pickle", _pickled_npz("labels"), "Python objects")
    add("npz-names-pickle", _pickled_npz("label_names"), "Python objects")
    add("npz-attr-pickle", _pickled_npz("attr_x"), "Python objects")
    add("npz-images-nan", _file("nan.npz", npz({"images": np.full((2, 8, 8), np.nan)})), "NaN")
    add("npz-images-inf", _file("inf.npz", npz({"images": np.full((2, 8, 8), np.inf, np.float16)})), "infinite")
    add("npz-images-u16", _file("u16.npz", npz({"images": np.full((2, 8, 8), 60000, np.uint16)})), "0-255")
    add("npz-images-2d", _file("2d.npz", npz({"images": np.zeros((8, 8), np.uint8)})), "shape")
    labels = {
        "negative": np.array([0, 1, -1, 0, 1, 2]),
        "float": np.array([0, 1, 1.5, 0, 1, 2]),
        "nan": np.array([0, 1, np.nan, 0, 1, 2]),
        "inf": np.array([0, 1, np.inf, 0, 1, 2]),
        "float-huge": np.array([0, 1, 1e300, 0, 1, 2]),
        "short": np.array([0, 1, 2]),
        "long": np.arange(9),
        "2d": np.zeros((6, 2), np.int64),
        "strings": np.array(["a", "b", "c", "a", "b", "c"]),
        "complex": np.zeros(6, np.complex64),
    }
    for what, lab in labels.items():
        add(f"npz-labels-{what}", _file(f"lab-{what}.npz", npz({"images": IMG, "labels": lab})),
            "labels|NaN|negative|whole")
    names = np.array(["a", "b", "c"])
    for what, lab in {"1e9": [0, 1, 2, 10 ** 9, 0, 1], "u64max": np.array([0, 1, 2, 2 ** 64 - 1, 0, 1], np.uint64),
                      "3": [0, 1, 2, 3, 0, 1]}.items():
        add(f"npz-labels-{what}-named", _file(f"named-{what}.npz", npz({"images": IMG, "labels": np.asarray(lab),
                                                                          "label_names": names})), "has no name")
    add("npz-names-numeric", _file("nnum.npz", npz({"images": IMG, "labels": LAB, "label_names": np.arange(3)})),
        "strings")
    add("npz-attr-short", _file("attr.npz", npz({"images": IMG, "attr_x": np.zeros(3)})), "attribute 'x'")
    add("npz-attr-strings", _file("attrs.npz", npz({"images": IMG, "attr_x": np.array(list("abcdef"))})), "attr_x|numbers")
    add("npz-attr-huge", _file("attrh.npz", npz({"images": IMG, "attr_x": npy((10 ** 9,), "<f8")})), "attribute 'x'", True)
    add("npz-labels-huge", _file("labh.npz", npz({"images": IMG, "labels": npy((6,), "<i8", b"")})), "truncated")

    # HDF5: never-written storage, partial chunks, truncation, wrong types, labels
    def images(f, **kw):
        f.create_dataset("images", data=IMG, **kw)

    add("h5-junk", _file("junk.h5", RNG.bytes(2048)), "not an HDF5")
    add("h5-empty", _file("empty.h5", b""), "not an HDF5.*empty")
    add("h5-huge-unwritten", _h5("huge.h5", lambda f: f.create_dataset("images", shape=HUGE, dtype="u1")),
        "declares shape .*only 0 bytes", True)
    add("h5-huge-chunks", _h5("chunks.h5", lambda f: f.create_dataset("images", shape=HUGE, dtype="u1",
                                                                      chunks=(1000, 28, 28))), "chunks", True)
    add("h5-huge-gzip-partial", _h5("gzp.h5", lambda f: f.create_dataset(
        "images", shape=HUGE, dtype="u1", chunks=(1000, 28, 28), compression="gzip").__setitem__(0, 1)), "chunks", True)
    add("h5-huge-labels", _h5("hl.h5", lambda f: (images(f), f.create_dataset("labels", shape=(6,), dtype="i8"))),
        "labels.*only 0 bytes")
    for frac in (0.25, 0.5, 0.9):
        add(f"h5-cut-{frac}", _h5(f"cut{frac}.h5", images, cut=lambda n, fr=frac: int(n * fr)),
            "HDF5|truncated|damaged|images")
    add("h5-cut-100", _h5("cut100.h5", images, cut=lambda n: 100), "HDF5")
    add("h5-no-images", _h5("none.h5", lambda f: f.create_dataset("pictures", data=IMG)), "no 'images'.*pictures")
    add("h5-images-group", _h5("grp.h5", lambda f: f.create_group("images")), "no 'images'")
    add("h5-images-strings", _h5("str.h5", lambda f: f.create_dataset("images", data=np.full((2, 8, 8), b"ab"))), "dtype")
    add("h5-images-compound", _h5("cmp.h5", lambda f: f.create_dataset(
        "images", data=np.zeros((2, 8, 8), [("a", "u1"), ("b", "f4")]))), "dtype")
    add("h5-images-scalar", _h5("scalar.h5", lambda f: f.create_dataset("images", data=5)), "shape")
    add("h5-images-null", _h5("null.h5", lambda f: f.create_dataset("images", data=h5py.Empty("u1"))), "shape|empty")
    add("h5-images-nan", _h5("nan.h5", lambda f: f.create_dataset("images", data=np.full((2, 8, 8), np.nan))), "NaN")
    add("h5-images-i32", _h5("i32.h5", lambda f: f.create_dataset("images", data=np.full((2, 8, 8), 999, "i4"))), "0-255")
    add("h5-external", _h5("ext.h5", lambda f: f.create_dataset("images", shape=(6, 8, 8), dtype="u1",
                                                                external=[("elsewhere.bin", 0, 384)])), "other files")
    for what, lab in (("negative", [0, -3, 1, 0, 1, 2]), ("float", [0.5] * 6), ("short", [0, 1]),
                      ("2d", np.zeros((6, 1)))):
        add(f"h5-labels-{what}", _h5(f"lab-{what}.h5", lambda f, lab=lab: (images(f), f.__setitem__("labels", np.asarray(lab)))),
            "labels|negative|whole")
    add("h5-labels-u64max-named", _h5("u64.h5", lambda f: (images(f), f.__setitem__(
        "labels", np.array([0, 1, 2**64 - 1, 0, 1, 0], np.uint64)), f.attrs.__setitem__("label_names", ["a", "b"]))),
        "has no name")
    add("h5-attr-short", _h5("attr.h5", lambda f: (images(f), f.__setitem__("attributes/size", np.arange(3.0)))),
        "attribute 'size'")
    add("h5-external-link-fifo", _h5("elink.h5", lambda f: (os.mkfifo(os.path.join(os.path.dirname(f.filename), "p.h5")),
                                                            f.__setitem__("images", h5py.ExternalLink("p.h5", "/images")))),
        "links to another file")
    add("h5-attr-external-link", _h5("alink.h5", lambda f: (images(f), f.__setitem__(
        "attributes/x", h5py.ExternalLink("other.h5", "/x")))), "links to another file")
    add("h5-names-heap-loop", _h5("heap.h5", lambda f: (images(f), f.__setitem__("labels", LAB),
                                                        f.attrs.__setitem__("label_names", ["a", "b", "c"])),
                                  patch=_break_global_heap), "heap of variable-length strings")
    add("h5-attr-overflow", _h5("big.h5", lambda f: (images(f), f.__setitem__("attributes/x", np.full(6, 1e300)))),
        "float32 range")
    add("h5-names-numeric", _h5("nn.h5", lambda f: (images(f), f.__setitem__("labels", LAB),
                                                    f.__setitem__("label_names", np.arange(3)))), "strings")

    # IDX, plain and gzipped
    add("idx-empty", _file("e-images-idx3-ubyte", b""), "magic")
    add("idx-bad-magic", _file("m-images-idx3-ubyte", b"\x01\x00\x08\x03" + good_idx[4:]), "magic")
    add("idx-bad-type", _file("t-images-idx3-ubyte", b"\x00\x00\x99\x03" + good_idx[4:]), "magic")
    add("idx-zero-dims", _file("z-images-idx3-ubyte", b"\x00\x00\x08\x00"), "no dimensions")
    add("idx-header-cut", _file("h-images-idx3-ubyte", good_idx[:9]), "header is incomplete")
    add("idx-255-dims", _file("d-images-idx3-ubyte", b"\x00\x00\x08\xff" + b"\xff" * 40), "header is incomplete")
    add("idx-body-cut", _file("b-images-idx3-ubyte", good_idx[:-7]), "truncated")
    add("idx-trailing", _file("l-images-idx3-ubyte", good_idx + b"\x00"), "longer than its header")
    add("idx-huge", _file("huge-images-idx3-ubyte", idx(HUGE, body=b"")), "truncated.*7.3 GB", True)
    add("idx-overflow", _file("of-images-idx3-ubyte", idx((2**32 - 1,) * 3, body=b"")), "truncated", True)
    add("idx-2d", _file("two-images-idx3-ubyte", idx((8, 8))), "shape")
    add("idx-nan", _file("nan-images-idx3-ubyte", idx((2, 8, 8), 0x0D, np.full((2, 8, 8), np.nan, ">f4").tobytes())), "NaN")
    add("idx-i32-range", _file("i32-images-idx3-ubyte", idx((2, 8, 8), 0x0C, np.full((2, 8, 8), 7000, ">i4").tobytes())), "0-255")
    add("idx-labels-count", _idx_pair("cnt", good_idx, idx((5,))), "5 labels for the 6 images")
    add("idx-labels-huge", _idx_pair("lh", good_idx, idx((6,), 0x0C, b"")), "truncated")
    add("idx-labels-2d", _idx_pair("l2", good_idx, idx((6, 2))), "1-D")
    add("idx-labels-negative", _idx_pair("ln", good_idx, idx((6,), 0x09, np.full(6, -1, "i1").tobytes())), "negative")
    add("idx-labels-float", _idx_pair("lf", good_idx, idx((6,), 0x0D, np.full(6, 0.5, ">f4").tobytes())), "whole")
    add("idx-labels-opened", _file("x-labels-idx1-ubyte", idx((6,))), "holds labels")
    add("gz-not-gzip", _file("n-images-idx3-ubyte.gz", good_idx), "damaged|gzip")
    add("gz-random", _file("r-images-idx3-ubyte.gz", b"\x1f\x8b" + RNG.bytes(200)), "damaged|gzip|magic")
    add("gz-cut", _file("c-images-idx3-ubyte.gz", gzip.compress(good_idx)[:30]), "damaged|truncated|magic|header")
    add("gz-crc", _file("crc-images-idx3-ubyte.gz", lambda: (lambda g: g[:-8] + b"\x00\x00\x00\x00" + g[-4:])(gzip.compress(good_idx))),
        "damaged|CRC")
    add("gz-huge", _file("huge-images-idx3-ubyte.gz", gzip.compress(idx(HUGE, body=b""))), "compressed data can hold", True)
    add("gz-stream-runs-on", _gz_stream_runs_on, "longer than its header", True)
    add("gz-header-cut", _file("hc-images-idx3-ubyte.gz", gzip.compress(good_idx[:10])), "header is incomplete")
    add("gz-labels-count", _idx_pair("gzc", good_idx, idx((7,)), gz=True), "7 labels for the 6 images")
    add("gz-labels-runs-on", _idx_pair("gzl", good_idx, idx((6,)) + b"\x01" * 100, gz=True), "longer than its header")

    # folders of images
    add("dir-empty", _folder("empty", {}), "empty")
    add("dir-hidden-only", _folder("hidden", {".DS_Store": b"x", ".git/x.png": png_bytes()}), "empty")
    add("dir-text-only", _folder("text", {"a.txt": b"x", "b.csv": b"1,2"}), "no images.*2 other")
    add("dir-broken-only", _folder("broken", {f"{i}.png": RNG.bytes(50) for i in range(4)}), "no readable images.*4")
    add("dir-truncated-png", _folder("cutpng", {"a.png": png_bytes((64, 64))[:60]}), "no readable images")
    add("dir-zero-bytes", _folder("zero", {"a.jpg": b"", "b.png": b""}), "no readable images")
    add("dir-bomb", _folder("bomb", {"a.png": png_declaring(100_000, 100_000)}), "no readable images")
    add("dir-fifo", _folder("fifo", {"a.png": os.mkfifo}), "no readable images")
    add("dir-devzero", _folder("dev", {"a.png": lambda p: os.symlink("/dev/zero", p)}), "no readable images")
    add("dir-tiny", _folder("tiny", {"a.png": png_bytes((2, 2))}), "too small")
    add("dir-classes-broken", _folder("cls", {"cats/a.png": b"no", "dogs/b.png": b"no"}), "no readable images")
    add("dir-idx-broken", _folder("idxdir", {"train-images-idx3-ubyte": b"junk"}), "magic")

    # wrong extensions
    add("ext-png-as-npz", _file("img.npz", png_bytes()), "PNG image")
    add("ext-png-as-npy", _file("img.npy", png_bytes()), "PNG image")
    add("ext-png-as-h5", _file("img.h5", png_bytes()), "PNG image")
    add("ext-npz-as-h5", _file("arr.hdf5", good_npz), "zip file")
    add("ext-h5-as-npz", _h5("h5.npz", images), "HDF5 file")
    add("ext-gzip-as-npz", _file("gz.npz", gzip.compress(good_npz)), "gzip file")
    add("ext-png-as-idx", _file("p-images-idx3-ubyte", png_bytes()), "magic")
    add("ext-csv", _file("data.csv", b"1,2,3\n"), "unsupported")
    add("ext-dir-as-npz", lambda d: (os.makedirs(os.path.join(d, "dir.npz")), os.path.join(d, "dir.npz"))[1], "empty")

    # FIFOs, devices, missing
    for name in ("fifo.npz", "fifo.npy", "fifo.h5", "fifo-images-idx3-ubyte", "fifo-images-idx3-ubyte.gz", "fifo.png"):
        add(f"fifo-{name}", _fifo(name), "FIFO|unsupported")
    add("devzero-npy", _link("zero.npy", "/dev/zero"), "character device")
    add("devnull-h5", _link("null.h5", "/dev/null"), "character device")
    add("missing", lambda d: os.path.join(d, "nothing.npz"), "no such")
    add("link-loop", lambda d: (os.symlink("loop.npz", os.path.join(d, "loop.npz")), os.path.join(d, "loop.npz"))[1],
        "cannot be read.*symbolic links")
    add("dangling-link", _link("dangling.npz", "/nonexistent/x.npz"), "cannot be read.*No such file")
    return cases
