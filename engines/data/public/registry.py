"""The public data sets known by name: their official files, sizes, checksums, licence, citation.

Checksums are md5 (pooch's "md5:…" form), as the publishers give them (the CIFAR page, the
Fashion-MNIST README) or, for MNIST, KMNIST and CelebA, as torchvision pins them. Sizes are in
bytes; they size the progress bar and the "download size" shown, the checksum is what is verified.
No real file could be downloaded where this was written; every md5 and size was cross-checked
against public copies instead (the sources per set are named beside it):
- md5s: copies of torchvision's MNIST.resources, KMNIST.resources and CelebA.file_list (several
  independent repositories each), the Fashion-MNIST README's table, the CIFAR page's table;
- sizes: the MNIST page's file list, Keras/torchvision download logs whose progress totals are the
  servers' Content-Length (Fashion-MNIST, KMNIST, CelebA), a CIFAR-10 download checked byte-exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RemoteFile:
    name: str  # the official file name (also its name in the data folder and on a mirror)
    hash: str  # "md5:…" or "sha256:…" (pooch's form)
    size: int  # bytes (approximate where marked in the registry)


@dataclass(frozen=True)
class PublicSet:
    name: str
    title: str
    files: tuple[RemoteFile, ...]
    base_url: str | None  # None: no reliable direct URL, place the files by hand (or a mirror)
    shape: tuple[int, int, int]  # (H, W, C) of the cached images
    n_images: int
    kind: str  # converter: "idx", "cifar-bin", "celeba"
    licence: str
    citation: str
    homepage: str
    label_names: tuple[str, ...] = ()
    n_attributes: int = 0
    manual: str = ""  # how to get the files by hand, where the host is unreliable
    notes: str = field(default="")

    @property
    def download_size(self) -> int:
        return sum(f.size for f in self.files)


_IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _idx_files(md5s, sizes):
    return tuple(RemoteFile(n, f"md5:{h}", s) for n, h, s in zip(_IDX, md5s, sizes))


MNIST = PublicSet(
    name="mnist", title="MNIST handwritten digits",
    # md5 as pinned by torchvision for these files since 2017 (identical on both hosts); sizes as the
    # MNIST page lists them.
    files=_idx_files(("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                      "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
                     (9912422, 28881, 1648877, 4542)),
    # yann.lecun.com is the homepage but often refuses downloads; torchvision's mirror serves the
    # same bytes (same md5).
    base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    shape=(28, 28, 1), n_images=70000, kind="idx",
    licence="CC BY-SA 3.0",
    citation="Y. LeCun, C. Cortes, C. J. C. Burges. The MNIST database of handwritten digits (1998).",
    homepage="http://yann.lecun.com/exdb/mnist/",
    label_names=tuple(str(i) for i in range(10)),
)

FASHION_MNIST = PublicSet(
    name="fashion-mnist", title="Fashion-MNIST (Zalando)",
    # md5 as published in the zalandoresearch/fashion-mnist README; sizes as Keras download logs
    # show them (same files on Keras's mirror).
    files=_idx_files(("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                      "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
                     (26421880, 29515, 4422102, 5148)),
    base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    shape=(28, 28, 1), n_images=70000, kind="idx",
    licence="MIT",
    citation="H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST: a Novel Image Dataset for Benchmarking "
             "Machine Learning Algorithms. arXiv:1708.07747 (2017).",
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    label_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
)

KMNIST = PublicSet(
    name="kmnist", title="Kuzushiji-MNIST (cursive Japanese hiragana)",
    # md5 as pinned by torchvision's KMNIST; all four sizes as a torchvision download log from
    # codh.rois.ac.jp shows them (its progress totals: 18165135, 29497, 3041136, 5120).
    files=_idx_files(("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
                      "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"),
                     (18165135, 29497, 3041136, 5120)),
    base_url="http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
    shape=(28, 28, 1), n_images=70000, kind="idx",
    licence="CC BY-SA 4.0",
    citation="T. Clanuwat, M. Bober-Irizar, A. Kitamoto, A. Lamb, K. Yamamoto, D. Ha. Deep Learning for "
             "Classical Japanese Literature. arXiv:1812.01718 (2018).",
    homepage="https://github.com/rois-codh/kmnist",
    # kmnist_classmap.csv: U+304A … U+3092, with their romanisations.
    label_names=("お (o)", "き (ki)", "す (su)", "つ (tsu)", "な (na)", "は (ha)", "ま (ma)", "や (ya)", "れ (re)",
                 "を (wo)"),
)

CIFAR10 = PublicSet(
    name="cifar10", title="CIFAR-10 (binary version)",
    # md5 as published on the CIFAR page for the binary version ("162 MB"); size as a download
    # verified against that md5 reports it.
    files=(RemoteFile("cifar-10-binary.tar.gz", "md5:c32a1d4ab5d03f1284b67883e8d87530", 170052171),),
    base_url="https://www.cs.toronto.edu/~kriz/",
    shape=(32, 32, 3), n_images=60000, kind="cifar-bin",
    licence="no licence stated by the authors (free to use for research, cite the report)",
    citation="A. Krizhevsky. Learning Multiple Layers of Features from Tiny Images. Tech. report, "
             "University of Toronto (2009).",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    label_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
)

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young")

CELEBA = PublicSet(
    name="celeba", title="CelebA aligned faces, 64×64, 40 attributes",
    # md5 as pinned by torchvision's CelebA (the files on the authors' Google Drive); sizes as a
    # torchvision download log shows them (list_eval_partition.txt: 202,599 CRLF lines of 14 bytes).
    files=(RemoteFile("img_align_celeba.zip", "md5:00d2c5bc6d35e252742224ab0c1e8fcb", 1443490838),
           RemoteFile("list_attr_celeba.txt", "md5:75e246fa4810816ffd6ee81facbd244c", 26721026),
           RemoteFile("list_eval_partition.txt", "md5:d32c9cbf5e040fd4025c592c306e6668", 2836386)),
    base_url=None,  # Google Drive only: no stable direct URL; a mirror or the files placed by hand
    shape=(64, 64, 3), n_images=202599, kind="celeba",
    licence="CelebA agreement: non-commercial research and education only",
    citation="Z. Liu, P. Luo, X. Wang, X. Tang. Deep Learning Face Attributes in the Wild. ICCV (2015).",
    homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
    n_attributes=len(CELEBA_ATTRIBUTES),
    manual="download img_align_celeba.zip (under 'Img/'), list_attr_celeba.txt and list_eval_partition.txt "
           "(under 'Anno/' and 'Eval/') from the CelebA page's Google Drive",
    notes="aligned crops, centre 178×178 square resized to 64×64; official train/valid/test partition "
          "(valid images are in neither train nor test)",
)

PUBLIC = {s.name: s for s in (MNIST, FASHION_MNIST, KMNIST, CIFAR10, CELEBA)}
