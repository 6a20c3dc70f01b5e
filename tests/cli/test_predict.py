"""`juanji predict`: top-k class names of image files, converted as the run's training data were.

A run is trained here on a folder of Fashion-MNIST test images: three classes (Trouser, Bag,
Sneaker) of 30 PNGs each.
"""


import numpy as np
import pytest
from PIL import Image

from juanji.cli import main

pytestmark = pytest.mark.data
CLASSES = {"bag": 8, "sneaker": 7, "trouser": 1}  # folder name -> Fashion-MNIST label


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    """ImageFolder's cache goes under ~/.cache: keep it in the test's own folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from juanji.data import FashionMNIST

    data, root = FashionMNIST(train=False, download=False), tmp_path_factory.mktemp("items")
    for name, label in CLASSES.items():
        (root / name).mkdir()
        for i in np.flatnonzero(data.labels == label)[:30]:
            Image.fromarray(data.images[i]).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(out / "home"))
        assert main(["train", "--data", str(folder), "--epochs", "3", "--batch-size", "16",
                     "--no-progress", "--out", str(out), "--name", "items"]) == 0
    return out / "items"


def test_predict_prints_the_class_names(run, folder, capsys):
    images = [sorted((folder / name).iterdir())[0] for name in CLASSES]
    assert main(["predict", "--checkpoint", str(run), *map(str, images), "--topk", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line, path, name in zip(lines, images, CLASSES):
        where, guesses = line.split(": ")
        assert where == str(path)
        (top, p_top), (second, p_second) = [g.rsplit(" ", 1) for g in guesses.split(", ")]
        assert top == name  # three easy classes after 3 epochs
        assert second in CLASSES and second != top
        assert 1 >= float(p_top) >= float(p_second) >= 0


def test_predict_refuses_an_unreadable_image_in_one_line(run, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert main(["predict", "--checkpoint", str(run), str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"cannot convert {bad} into the run's input (grey 28x28)" in err


def test_predict_on_a_fashion_mnist_run_prints_its_names(folder, tmp_path, capsys):
    from juanji.data import FashionMNIST

    assert main(["train", "--limit", "600", "--epochs", "1", "--no-progress", "--out",
                 str(tmp_path), "--name", "fm"]) == 0
    image = sorted((folder / "trouser").iterdir())[0]
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(tmp_path / "fm"), str(image), "--topk",
                 "10"]) == 0
    guesses = capsys.readouterr().out.strip().split(": ", 1)[1].split(", ")
    names = [g.rsplit(" ", 1)[0] for g in guesses]
    assert sorted(names) == sorted(FashionMNIST.class_names)
    assert names[0] == "Trouser"


def test_predict_converts_colour_and_size_to_the_run_input(run, folder, tmp_path, capsys):
    """A larger RGB copy of an image gets the same answer as the grey 28x28 original."""
    original = sorted((folder / "sneaker").iterdir())[0]
    big = tmp_path / "big.jpg"
    Image.open(original).convert("RGB").resize((56, 56), Image.NEAREST).save(big, quality=100)
    assert main(["predict", "--checkpoint", str(run), str(original), str(big)]) == 0
    first, second = capsys.readouterr().out.strip().splitlines()
    assert first.split(": ")[1].split(" ")[0] == second.split(": ")[1].split(" ")[0] == "sneaker"


def test_topk_must_be_positive(run):
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--checkpoint", str(run), "x.png", "--topk", "0"])
    assert exit_.value.code == 2
