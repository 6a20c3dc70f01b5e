"""The same Fashion-MNIST images trained from a folder of PNGs and from the IDX files end
within 2 points of each other, and `juanji predict` names a class of the folder."""

import re

import pytest
from PIL import Image

from juanji.cli import main
from juanji.data import FashionMNIST
from juanji.io.checkpoint import read_run_info

pytestmark = [pytest.mark.slow, pytest.mark.data]
TRAIN, TEST = 12000, 2000  # the first images of each split; --limit 12000 takes the same
COMMON = ["--model", "simple_convnet", "--epochs", "3", "--batch-size", "64", "--seed", "0",
          "--no-progress"]


def folder_name(label):
    return FashionMNIST.class_names[label].replace("/", "-")  # "T-shirt/top" -> "T-shirt-top"


def write_split(data, count, root):
    for i in range(count):
        folder = root / folder_name(int(data.labels[i]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.images[i]).save(folder / f"{i:05d}.png")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pngs") / "fashion"
    write_split(FashionMNIST(train=True, download=False), TRAIN, root / "train")
    write_split(FashionMNIST(train=False, download=False), TEST, root / "test")
    return root


def test_a_png_folder_trains_like_the_idx_files(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # ImageFolder's cache
    assert main(["train", *COMMON, "--data", str(folder), "--out", str(tmp_path),
                 "--name", "pngs"]) == 0
    # --limit N keeps the first N training and N // 6 test images: the same 12000 and 2000
    assert main(["train", *COMMON, "--limit", str(TRAIN), "--out", str(tmp_path),
                 "--name", "idx"]) == 0
    pngs, idx = (read_run_info(tmp_path / name) for name in ("pngs", "idx"))
    assert pngs["config"]["classes"] == sorted(folder_name(k) for k in range(10))
    from_folder, from_idx = pngs["history"][-1]["test_acc"], idx["history"][-1]["test_acc"]
    with capsys.disabled():
        print(f"\ntest accuracy from the PNG folder {from_folder:.4f}, from IDX {from_idx:.4f}")
    assert from_idx > 0.8
    assert abs(from_folder - from_idx) <= 0.02, (from_folder, from_idx)

    capsys.readouterr()
    image = sorted((folder / "test" / "Trouser").iterdir())[0]
    assert main(["predict", "--checkpoint", str(tmp_path / "pngs"), str(image),
                 "--topk", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.match(rf"{re.escape(str(image))}: Trouser \d\.\d+", line), line
