"""`juanji train --task segmentation`, `eval` and `predict` on a segmentation folder.

The folder is drawn here: 32x32 noisy grey canvases, each with one bright square (class 1) and
one bright disc (class 2) of radius 4-6 at random places, and their class-index masks. Telling
the two apart takes their shape, not their brightness.
"""

import contextlib
import io
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from cli_checks import run as run_cli
from PIL import Image

from juanji.cli import main
from juanji.io.checkpoint import open_checkpoint, read_run_info
from juanji.metrics import confusion_matrix, mean_iou

SIZE = 32
ITEMS = 200  # 180 train, 20 held out by the default --val-split 0.1
UNET = ["--task", "segmentation", "--model", "unet", "--model-arg", "width=8",
        "--model-arg", "depth=2"]
FAST = ["--no-progress", "--batch-size", "16"]
# measured: mean IoU 0.923 on the 20 held-out images after these 6 epochs (pixel accuracy
# 0.988; 0.918-0.930 with --lr 0.0098-0.0101); predicting background everywhere gives 0.270
TRAIN = [*UNET, "--epochs", "6", "--lr", "0.01", *FAST]
MIN_MEAN_IOU = 0.88


def shapes_item(rng, size=SIZE):
    """(image uint8 (size, size), mask uint8 (size, size)): a square and a disc on noise."""
    image = rng.normal(0.3, 0.12, (size, size))
    mask = np.zeros((size, size), np.uint8)
    rows, cols = np.mgrid[:size, :size]
    for label in rng.permutation([1, 2]):
        r = int(rng.integers(4, 7))
        cy, cx = rng.integers(r, size - r, 2)
        if label == 1:
            inside = (abs(rows - cy) <= r) & (abs(cols - cx) <= r)
        else:
            inside = (rows - cy) ** 2 + (cols - cx) ** 2 <= r * r
        image[inside] = rng.normal(0.85, 0.05, inside.sum())
        mask[inside] = label
    return (np.clip(image, 0, 1) * 255).astype(np.uint8), mask


def write_shapes(root, count=ITEMS, seed=0, size=SIZE):
    """root/images/NNN.png and root/masks/NNN.png; returns root."""
    rng = np.random.default_rng(seed)
    for name in ("images", "masks"):
        (Path(root) / name).mkdir(parents=True)
    for i in range(count):
        image, mask = shapes_item(rng, size)
        Image.fromarray(image).save(Path(root) / "images" / f"{i:03d}.png")
        Image.fromarray(mask).save(Path(root) / "masks" / f"{i:03d}.png")
    return Path(root)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_shapes(tmp_path_factory.mktemp("data") / "shapes")


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory):
    """(run folder, what training printed)."""
    out, printed = tmp_path_factory.mktemp("runs"), io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["train", *TRAIN, "--data", str(folder), "--out", str(out), "--name", "unet"])
    assert code == 0, printed.getvalue()
    return out / "unet", printed.getvalue()


def held_out_stems(folder):
    """The stems of the images the default split holds out (seed 0, 10%)."""
    from juanji.cli.data import split_indices

    stems = sorted(p.stem for p in (folder / "images").iterdir())
    return [stems[i] for i in split_indices(len(stems), 0.1, 0, folder)[1]]


def read_masks(folder, stems):
    return np.stack([np.asarray(Image.open(folder / "masks" / f"{s}.png")) for s in stems])


def test_unet_learns_the_shapes_and_reports_mean_iou(trained, folder):
    run, printed = trained
    config = read_run_info(run)["config"]
    assert config["task"] == "segmentation"
    assert config["model_args"] == {"num_classes": 3, "in_channels": 1, "width": 8, "depth": 2}
    assert config["classes"] == ["0", "1", "2"] and config["image_size"] == [SIZE, SIZE]
    history = read_run_info(run)["history"]
    assert len(history) == 6 and all("test_miou" in r for r in history)
    last = history[-1]
    # predicting background everywhere: the held-out masks' background share as IoU, 0 for the
    # shapes
    masks = read_masks(folder, held_out_stems(folder))
    background = mean_iou(confusion_matrix(masks, np.zeros_like(masks), 3))
    assert 0.2 < background < 0.4
    assert last["test_miou"] >= MIN_MEAN_IOU > background + 0.4
    assert last["test_miou"] > history[0]["test_miou"]
    assert last["test_acc"] > 0.95 and 0.9 < last["train_acc"] <= 1  # pixel accuracy
    assert f"pixel acc {last['test_acc']:.4f} mIoU {last['test_miou']:.4f}" in printed
    assert f"done: test pixel accuracy {last['test_acc']:.4f}, mean IoU " \
           f"{last['test_miou']:.4f}" in printed
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert "test_miou" in header and "test_acc" in header
    rows = [line.split(",") for line in (run / "per_class.csv").read_text().splitlines()]
    assert rows[0] == ["class", "accuracy", "iou"] and [r[0] for r in rows[1:]] == ["0", "1", "2"]
    assert np.mean([float(r[2]) for r in rows[1:]]) == pytest.approx(last["test_miou"], abs=1e-5)
    for picture in ("confusion.png", "curves.png"):
        assert (run / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_reports_pixel_accuracy_and_mean_iou(trained, capsys):
    run, _ = trained
    (run / "per_class.csv").unlink()
    assert main(["eval", "--checkpoint", str(run)]) == 0
    out = capsys.readouterr().out
    last = read_run_info(run)["history"][-1]
    assert f"test set (20 images): pixel accuracy {last['test_acc']:.4f}, mean IoU " \
           f"{last['test_miou']:.4f}" in out
    per_class = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert [line[0] for line in per_class] == ["0", "1", "2"]
    assert sum(int(line[-2].lstrip("(")) for line in per_class) == 20 * SIZE * SIZE
    assert (run / "per_class.csv").read_text().startswith("class,accuracy,iou\n")


def test_predict_writes_masks_that_match_the_truth(trained, folder, tmp_path, capsys):
    run, _ = trained
    stems = held_out_stems(folder)[:2]
    images = [folder / "images" / f"{s}.png" for s in stems]
    # a colour copy at twice the size gets a mask at its own size
    big = tmp_path / "big.png"
    Image.open(images[0]).convert("RGB").resize((2 * SIZE, 2 * SIZE), Image.NEAREST).save(big)
    out = tmp_path / "predicted"
    code, printed, _ = run_cli(capsys, "predict", "--checkpoint", run, *images, big, "--out", out)
    assert code == 0
    lines = printed.strip().splitlines()
    assert len(lines) == 3
    truth = read_masks(folder, stems)
    for line, image, true in zip(lines, [*images, big], [*truth, truth[0]]):
        mask_path, overlay_path = out / f"{image.stem}_mask.png", out / f"{image.stem}_overlay.png"
        assert line == f"{image}: mask {mask_path}, overlay {overlay_path}"
        mask = Image.open(mask_path)
        assert mask.mode == "L"
        mask = np.asarray(mask)
        if image == big:
            true = true.repeat(2, axis=0).repeat(2, axis=1)
        assert mask.shape == true.shape
        assert set(np.unique(mask)) <= {0, 1, 2}
        assert (mask == true).mean() > 0.95
        overlay = Image.open(overlay_path)
        assert overlay.mode == "RGB" and overlay.size == mask.shape[::-1]
    # without --out the files go to the run's predictions/
    assert main(["predict", "--checkpoint", str(run), str(images[1])]) == 0
    assert (run / "predictions" / f"{stems[1]}_mask.png").exists()


def test_overlays_use_pascal_voc_colours():
    from juanji.cli.segmentation import class_palette, overlay

    palette = class_palette(22)
    assert palette[:6].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0],
                                    [0, 0, 128], [128, 0, 128]]
    assert palette[8].tolist() == [64, 0, 0]
    assert palette[15].tolist() == [192, 128, 128]  # VOC person
    image = np.full((1, 2, 3), 0.5, np.float32)  # grey 128 (127.5)
    blended = overlay(image, np.array([[0, 2]]), palette)
    assert blended.tolist() == [[[64, 64, 64], [64, 128, 64]]]


def test_the_split_is_reproducible_by_seed(folder):
    from juanji.cli.segmentation import load_segmentation_folder

    first = load_segmentation_folder(folder, None, 0.1, 0)
    again = load_segmentation_folder(folder, None, 0.1, 0)
    other = load_segmentation_folder(folder, None, 0.1, 1)
    assert first[0][0].shape == (180, 1, SIZE, SIZE) and first[1][1].shape == (20, SIZE, SIZE)
    assert first[2:] == ("L", 3)
    assert np.array_equal(first[1][1], again[1][1])
    assert not np.array_equal(first[1][1], other[1][1])


def newest(run_dir):
    checkpoint, state = open_checkpoint(run_dir)
    return (checkpoint / "model.safetensors").read_bytes(), state["trainer"]


def test_augmented_training_resumes_exactly_inside_an_epoch(folder, tmp_path, monkeypatch):
    """A SIGTERM after the checkpoint at step 3 stops the run at step 4 of epoch 1 (pixel
    accuracy sums as fractions in its state); resumed, it ends equal to an uninterrupted run."""
    from juanji.train import Trainer

    args = ["train", "--task", "segmentation", "--model", "unet", "--model-arg", "width=4",
            "--model-arg", "depth=2", "--data", str(folder), "--limit", "96", "--augment",
            "crop,flip,rotate", *FAST, "--out", str(tmp_path)]
    assert main([*args, "--name", "full", "--epochs", "2"]) == 0
    save = Trainer.save

    def save_then_stop(self):
        save(self)
        if self.global_step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Trainer, "save", save_then_stop)
    assert main([*args, "--name", "half", "--epochs", "2", "--save-every", "3"]) == \
        128 + signal.SIGTERM
    monkeypatch.setattr(Trainer, "save", save)
    stopped = read_run_info(tmp_path / "half")
    assert (stopped["epoch"], stopped["step"]) == (0, 4)
    assert main(["train", "--resume", str(tmp_path / "half"), "--no-progress"]) == 0
    full, half = newest(tmp_path / "full"), newest(tmp_path / "half")
    assert full[1] == half[1]
    assert full[0] == half[0], "the resumed run's weights differ from the uninterrupted run's"
    history = [read_run_info(tmp_path / name)["history"] for name in ("full", "half")]
    for key in ("train_acc", "test_acc", "test_miou"):
        assert history[0][-1][key] == history[1][-1][key]
    # the augmentation did something: without it the weights differ
    plain = [a for a in args if a not in ("--augment", "crop,flip,rotate")]
    assert main([*plain, "--name", "plain", "--epochs", "2"]) == 0
    assert newest(tmp_path / "plain")[0] != full[0]


def test_the_task_is_fixed_on_resume(folder, tmp_path, capsys):
    assert main(["train", *UNET, "--data", str(folder), "--limit", "32", "--epochs", "1",
                 *FAST, "--out", str(tmp_path), "--name", "r"]) == 0
    before = read_run_info(tmp_path / "r")
    code, _, err = run_cli(capsys, "train", "--resume", tmp_path / "r", "--epochs", "2",
                           "--task", "classification")
    assert code == 2
    assert "--task 'classification' (the run has 'segmentation')" in err
    assert read_run_info(tmp_path / "r") == before


def test_train_and_test_folders_are_used_as_given(tmp_path, capsys):
    root = tmp_path / "split"
    write_shapes(root / "train", count=24)
    write_shapes(root / "val", count=8, seed=1)
    code, out, _ = run_cli(capsys, "train", *UNET, "--data", root, "--epochs", "1", *FAST,
                           "--out", tmp_path / "out", "--name", "s")
    assert code == 0
    assert "(24 train / 8 test images)" in out


# ---- bad input: one line naming the file or value, nothing written ---------------------------


def _mask_without_image(root):
    write_shapes(root, count=4)
    (root / "masks" / "000.png").rename(root / "masks" / "lost.png")
    return [], ["mask {root}/masks/lost.png has no image"]


def _image_without_mask(root):
    write_shapes(root, count=4)
    (root / "masks" / "002.png").unlink()
    return [], ["image {root}/images/002.png has no mask"]


def _value_beyond_num_classes(root):
    write_shapes(root, count=4)
    return ["--num-classes", "2"], ["mask {root}/masks/000.png has the value 2",
                                    "num_classes=2", "0..1"]


def _mixed_sizes(root):
    write_shapes(root, count=4)
    write_shapes(root / "big", count=1, size=48)
    for name in ("images", "masks"):
        (root / "big" / name / "000.png").rename(root / name / "zz.png")
    return [], ["images differ in size", "{root}/images/zz.png is 48x48"]


def _classification_model(root):
    write_shapes(root, count=4)
    return ["--model", "lenet5"], ["--task segmentation needs a segmentation model",
                                   "--model lenet5"]


def _class_folders(root):
    for name in ("disc", "square"):
        (root / name).mkdir(parents=True)
        Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(root / name / "0.png")
    return [], ["expects {root}/images and {root}/masks", "disc, square"]


def _unknown_model_arg(root):
    write_shapes(root, count=4)
    return ["--model-arg", "widht=4"], ["--model-arg widht=4", "unet has no argument 'widht'"]


def _size_the_model_cannot_take(root):
    write_shapes(root, count=4, size=28)
    return [], ["unet of depth 3 needs image height and width divisible by 8; the images are "
                "28x28: give --image-size 32x32"]


@pytest.mark.parametrize("make", [_mask_without_image, _image_without_mask,
                                  _value_beyond_num_classes, _mixed_sizes, _classification_model,
                                  _class_folders, _unknown_model_arg, _size_the_model_cannot_take])
def test_bad_input_is_one_line_and_writes_nothing(make, tmp_path, capsys):
    root = tmp_path / "bad"
    flags, fragments = make(root)
    out = tmp_path / "runs"
    argv = ["train", "--task", "segmentation", "--model", "unet", "--model-arg", "width=4",
            "--model-arg", "depth=3", "--data", root, "--epochs", "1", "--no-progress",
            "--out", out, "--name", "r", *flags]
    code, _, err = run_cli(capsys, *argv)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment.format(root=root.resolve()) in lines[0], lines[0]
    assert not out.exists()
