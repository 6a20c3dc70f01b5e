"""`juanji train --data FOLDER`, recipes, augmentation and the evaluation files, through the CLI.

The folders are written here from Fashion-MNIST test images: three classes (Trouser, Bag,
Sneaker) of 30 PNGs each.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from juanji.cli import main
from juanji.io.checkpoint import open_checkpoint, read_run_info

pytestmark = pytest.mark.data
CLASSES = {"bag": 8, "sneaker": 7, "trouser": 1}  # folder name -> Fashion-MNIST label
FAST = ["--no-progress", "--batch-size", "16"]


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    """ImageFolder's cache goes under ~/.cache: keep it in the test's own folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def write_folder(root, per_class=30, size=None):
    """root/<class>/<n>.png from Fashion-MNIST's test set; returns root."""
    from juanji.data import FashionMNIST

    data = FashionMNIST(train=False, download=False)
    for name, label in CLASSES.items():
        folder = Path(root) / name
        folder.mkdir(parents=True)
        for i in np.flatnonzero(data.labels == label)[:per_class]:
            image = Image.fromarray(data.images[i])
            (image.resize(size) if size else image).save(folder / f"{i}.png")
    return Path(root)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("data") / "items")


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(out / "home"))
        assert main(["train", "--data", str(folder), "--epochs", "3", *FAST, "--out", str(out),
                     "--name", "items"]) == 0
    return out / "items"


def config_of(run_dir):
    return read_run_info(run_dir)["config"]


def test_folder_training_records_classes_and_statistics(run, folder):
    config = config_of(run)
    assert config["data"] == str(folder.resolve())
    assert config["classes"] == ["bag", "sneaker", "trouser"]
    assert config["model_args"] == {"num_classes": 3, "in_channels": 1}
    assert config["mode"] == "L" and config["image_size"] == [28, 28]
    # mean and std of the 81 training images (the split holds 9 = 10% out)
    images = np.stack([np.asarray(Image.open(p)) for name in CLASSES
                       for p in sorted((folder / name).iterdir())]) / 255
    assert 0.1 < config["mean"][0] < 0.5 and config["std"][0] > 0.1
    assert abs(config["mean"][0] - images.mean()) < 0.02  # 81 of the 90 images
    history = read_run_info(run)["history"]
    assert history[-1]["test_acc"] >= 8 / 9
    rows = (run / "per_class.csv").read_text().splitlines()
    assert rows[0] == "class,accuracy" and [r.split(",")[0] for r in rows[1:]] == \
        ["bag", "sneaker", "trouser"]
    assert (run / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_split_is_reproducible_by_seed(folder):
    from juanji.cli.data import load_folder

    first = load_folder(folder, None, 0.1, 0)
    again = load_folder(folder, None, 0.1, 0)
    other = load_folder(folder, None, 0.1, 1)
    assert len(first[0][1]) == 81 and len(first[1][1]) == 9
    assert np.array_equal(first[1][0], again[1][0])
    assert not np.array_equal(first[1][0], other[1][0])


def test_eval_prints_class_names_and_writes_the_confusion_matrix(run, capsys):
    (run / "confusion.png").unlink()
    (run / "per_class.csv").unlink()
    assert main(["eval", "--checkpoint", str(run)]) == 0
    out = capsys.readouterr().out
    accuracy = read_run_info(run)["history"][-1]["test_acc"]
    assert f"test set (9 images): accuracy {accuracy:.4f}" in out
    lines = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert [line[0] for line in lines] == ["bag", "sneaker", "trouser"]
    assert (run / "confusion.png").exists() and (run / "per_class.csv").exists()


def test_a_recipe_fills_the_flags_not_given(folder, tmp_path, capsys):
    from juanji.models import RECIPES

    assert main(["train", "--model", "fashion_cnn", "--data", str(folder), "--epochs", "1",
                 "--lr", "0.01", "--image-size", "32x32", "--no-progress", "--out",
                 str(tmp_path), "--name", "cnn"]) == 0
    config = config_of(tmp_path / "cnn")
    recipe = RECIPES["fashion_cnn"]
    for key in ("optimizer", "scheduler", "batch_size", "weight_decay", "augment"):
        assert config[key] == recipe[key], key
    assert config["epochs"] == 1 and config["lr"] == 0.01  # the flags given win
    assert recipe["epochs"] != 1 and recipe["lr"] != 0.01
    assert config["image_size"] == [32, 32]
    assert config["model_args"] == {"num_classes": 3, "in_channels": 1, "input_size": 32}
    assert "using fashion_cnn's recipe (flags given win): epochs 1" in capsys.readouterr().out


def test_lenet5_recipe_is_the_readme_default():
    from juanji.cli.train import TRAIN_DEFAULTS
    from juanji.models import RECIPES

    assert RECIPES["lenet5"]["epochs"] == 3
    assert all(TRAIN_DEFAULTS[k] == v for k, v in RECIPES["lenet5"].items())


def test_models_lists_the_recipes(capsys):
    assert main(["models", "--recipes"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("fashion_cnn"))
    assert "--scheduler onecycle" in line and "--augment flip" in line
    assert main(["models", "--recipes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lenet5"]["epochs"] == 3


def newest_model(run_dir):
    checkpoint, state = open_checkpoint(run_dir)
    return (checkpoint / "model.safetensors").read_bytes(), state["trainer"]


def test_augmented_training_resumes_exactly(folder, tmp_path):
    args = ["--data", str(folder), "--augment", "crop,flip,erase", *FAST, "--out",
            str(tmp_path)]
    assert main(["train", *args, "--name", "full", "--epochs", "2"]) == 0
    assert main(["train", *args, "--name", "half", "--epochs", "1"]) == 0
    assert main(["train", "--resume", str(tmp_path / "half"), "--epochs", "2",
                 "--no-progress"]) == 0
    full, half = newest_model(tmp_path / "full"), newest_model(tmp_path / "half")
    assert full[1]["generator"] == half[1]["generator"]
    assert full[0] == half[0], "the resumed run's weights differ from the uninterrupted run's"
    # the augmentation did something: without it the weights differ
    assert main(["train", *args[:2], *FAST, "--out", str(tmp_path), "--name", "plain",
                 "--epochs", "2"]) == 0
    assert newest_model(tmp_path / "plain")[0] != full[0]


def test_data_flags_are_fixed_on_resume(run, capsys):
    before = read_run_info(run)
    code = main(["train", "--resume", str(run), "--epochs", "4", "--augment", "flip",
                 "--image-size", "32x32"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--augment 'flip' (the run has 'none')" in err
    assert "--image-size [32, 32] (the run has [28, 28])" in err
    assert read_run_info(run) == before


def test_train_and_test_folders_are_used_as_given(tmp_path, capsys):
    root = tmp_path / "split"
    write_folder(root / "train", per_class=20)
    write_folder(root / "val", per_class=4)
    assert main(["train", "--data", str(root), "--epochs", "1", *FAST, "--out",
                 str(tmp_path / "out"), "--name", "s"]) == 0
    assert "(60 train / 12 test images)" in capsys.readouterr().out
    assert read_run_info(tmp_path / "out" / "s")["config"]["classes"] == sorted(CLASSES)


def _empty_class(root):
    write_folder(root, per_class=2)
    (root / "coat").mkdir()
    return "class folder {root}/coat has no images"


def _no_images(root):
    root.mkdir()
    return "no class folders in {root}"


def _mixed_sizes(root):
    write_folder(root, per_class=2)
    Image.new("L", (30, 30)).save(root / "trouser" / "zz-big.png")
    return "images differ in size"


def _unreadable(root):
    write_folder(root, per_class=10)
    (root / "sneaker" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return "cannot read image {root}/sneaker/broken.png"


@pytest.mark.parametrize("make", [_empty_class, _no_images, _mixed_sizes, _unreadable])
def test_bad_folders_are_one_line_and_write_nothing(make, tmp_path, capsys):
    root = tmp_path / "bad"
    match = make(root).format(root=root.resolve())
    out = tmp_path / "runs"
    code = main(["train", "--data", str(root), "--epochs", "1", "--no-progress", "--out",
                 str(out), "--name", "r"])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert len(err.splitlines()) == 1 and match in err, err
    assert not out.exists()


def test_a_missing_folder_and_folder_flags_on_a_named_dataset_are_usage_errors(tmp_path,
                                                                                  capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert "--data must be a dataset name" in capsys.readouterr().err
    assert main(["train", "--data", "mnist", "--image-size", "32", "--out", str(tmp_path)]) == 2
    assert "--image-size apply to a folder given to --data" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--val-split", "1.5"])
    assert exit_.value.code == 2
    assert "must be a number between 0 and 1" in capsys.readouterr().err
