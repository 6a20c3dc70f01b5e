"""Run every script in examples/seeds with small settings and check what it claims."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from juanji.viz.images import read_image

SEEDS = Path(__file__).resolve().parents[2] / "examples" / "seeds"


def load(name):
    spec = importlib.util.spec_from_file_location(f"seed_{name}", SEEDS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def picture(path):
    img = read_image(path)
    assert img.std() > 0.05, f"{path} is (nearly) constant"
    return img


def test_every_script_is_tested():
    tested = {"edge_detect_binary", "edge_detect_rgb", "mean_blur", "dropout_conventions",
              "simple_convnet_fashion", "output_size_and_params", "receptive_field_walk",
              "tiny_segmentation"}
    assert {p.stem for p in SEEDS.glob("*.py")} == tested


def test_edge_detect_binary(tmp_path, capsys):
    columns = load("edge_detect_binary").main(["--out", str(tmp_path)])
    assert columns == [28, 29]
    assert "non-zero output columns: [28, 29]" in capsys.readouterr().out
    img = picture(tmp_path / "edge_binary.png")
    # right panel: |output| is white exactly on columns 28, 29 (enlarged 4x)
    right = img[16:, (50 * 4 + 8):]
    bright = np.nonzero(right[..., 0].max(axis=0) > 0.5)[0]
    assert bright.min() == 28 * 4 and bright.max() == 30 * 4 - 1


def test_edge_detect_rgb(tmp_path):
    out = load("edge_detect_rgb").main(["--size", "48x64", "--out", str(tmp_path)])
    assert out.shape == (46, 62)
    picture(tmp_path / "edge_rgb.png")


def test_mean_blur(tmp_path):
    out = load("mean_blur").main(["--size", "40x48", "--out", str(tmp_path)])
    assert out.shape == (36, 44)
    picture(tmp_path / "mean_blur.png")


def test_dropout_conventions():
    out1_1, out1_2, out2_1, out2_2 = load("dropout_conventions").main([])
    assert out1_1.shape == (2, 3, 3, 3) and out2_1.shape == (4, 3)
    assert set(np.unique(out2_1)) <= set(np.arange(0, 25, 2))  # 0 or 2x the seed's 1..12


def test_output_size_and_params(capsys):
    s = load("output_size_and_params").main(["--steps"])
    assert s.totals["macs"] == 865_000
    assert "BAD" not in capsys.readouterr().out


def test_receptive_field_walk(tmp_path):
    fields = load("receptive_field_walk").main(["--size", "32", "--out", str(tmp_path)])
    assert fields["8"].size == (28, 28)
    picture(tmp_path / "receptive_field_walk.png")


def test_tiny_segmentation(tmp_path):
    result = load("tiny_segmentation").main(["--steps", "12", "--size", "16",
                                             "--out", str(tmp_path)])
    losses = result["losses"]
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3])
    picture(tmp_path / "tiny_segmentation.png")


@pytest.mark.slow
def test_tiny_segmentation_learns_the_shapes(tmp_path):
    result = load("tiny_segmentation").main(["--steps", "150", "--out", str(tmp_path)])
    assert result["accuracy"] > 0.95 and result["iou"] > 0.8


@pytest.mark.slow
def test_simple_convnet_fashion(tmp_path):
    loss0, loss1, acc = load("simple_convnet_fashion").main(
        ["--steps", "40", "--limit", "2000", "--test", "300", "--batch-size", "32",
         "--out", str(tmp_path)])
    assert loss1 < loss0 and acc > 0.4
    img = picture(tmp_path / "simple_convnet_filters.png")
    assert img.shape[1] > 2 * img.shape[0]  # before and after, side by side
