"""`juanji viz ...` and `juanji filter`: files written (checked by pixels) and bad input."""

import json

import numpy as np
import pytest
from cli_checks import assert_one_line_error, run
from PIL import Image

from juanji.viz.images import half_white, read_image, synthetic_photo, write_image


@pytest.fixture
def trained_run(tmp_path):
    """A run folder as the trainer writes it (weights set by hand, no training)."""
    from juanji.io.checkpoint import save_run
    from juanji.models import MODELS

    model = MODELS["simple_convnet"]()
    model.conv1.weight.data[...] = 0
    model.conv1.weight.data[:, 0, :, 0] = 1.0  # every filter: a bright left column
    run_dir = tmp_path / "run1"
    save_run(run_dir, model, {"model": "simple_convnet", "data": "fashion-mnist",
                              "model_args": {"num_classes": 10, "in_channels": 1}})
    return run_dir


@pytest.fixture
def flat_run(tmp_path):
    """A run folder in the flat run.json layout."""
    from safetensors.numpy import save_file

    from juanji.models import MODELS

    model = MODELS["simple_convnet"]()
    run_dir = tmp_path / "run2"
    run_dir.mkdir()
    save_file({k: np.ascontiguousarray(v) for k, v in model.state_dict().items()},
              str(run_dir / "model.safetensors"))
    (run_dir / "run.json").write_text(json.dumps({"model": "simple_convnet", "num_classes": 10,
                                                  "in_channels": 1, "input_size": [1, 28, 28]}))
    return run_dir


def test_filters_and_compare(capsys, trained_run, flat_run):
    code, out, _ = run(capsys, "viz", "filters", "--checkpoint", trained_run)
    path = trained_run / "filters_conv1.png"
    assert code == 0 and f"wrote {path}" in out
    img = read_image(path)
    assert img.std() > 0.1
    code, out, _ = run(capsys, "viz", "filters", "--checkpoint", trained_run, "--compare",
                       flat_run, "--out", trained_run / "cmp.png")
    assert code == 0 and "cmp.png" in out
    assert read_image(trained_run / "cmp.png").shape[1] > img.shape[1]


def test_features(capsys, trained_run, tmp_path):
    image = write_image(tmp_path / "half.png", half_white(28, 28, 14))
    code, out, _ = run(capsys, "viz", "features", "--checkpoint", trained_run, "--image",
                       image)
    assert code == 0 and "features_half.png" in out and "conv1 30x24x24" in out
    assert read_image(trained_run / "features_half.png").std() > 0.1


def test_conv_animation(capsys, tmp_path):
    out_file = tmp_path / "x.gif"
    code, out, _ = run(capsys, "viz", "conv", "--kernel", "3", "--stride", "2", "--padding",
                       "1", "--dilation", "2", "--input", "7x7", "--out", out_file)
    assert code == 0 and f"wrote {out_file}" in out
    with Image.open(out_file) as gif:
        assert gif.n_frames == 3 * 3  # (7 + 2 - 5) // 2 + 1 = 3 per side


def test_receptive_field_picture(capsys, tmp_path):
    out_file = tmp_path / "rf.png"
    code, out, _ = run(capsys, "viz", "receptive-field", "lenet5", "--layer", "features.3",
                       "--out", out_file)
    assert code == 0
    assert "receptive field 14x14 (jump 2, start 4.5)" in out
    pic = np.round(read_image(out_file) * 255)
    assert (pic == (255, 0, 0)).all(axis=-1).sum() > 100  # the red outline is there


def test_filter_edge(capsys, tmp_path):
    image = write_image(tmp_path / "half.png", half_white(50, 50, 30))
    out_file = tmp_path / "edges.png"
    code, out, _ = run(capsys, "filter", image, "--kernel", "edge", "--out", out_file)
    assert code == 0 and f"wrote {out_file}" in out and "50x48 response" in out
    edges = read_image(out_file)
    assert np.nonzero(edges.sum(axis=0))[0].tolist() == [28, 29]
    code, _, _ = run(capsys, "filter", image, "--weights", "1,0,-1", "--out", out_file)
    assert code == 0 and np.array_equal(read_image(out_file), edges)


def test_filter_rgb_photo_per_channel(capsys, tmp_path):
    image = write_image(tmp_path / "photo.png", synthetic_photo(48, 64))
    out_file = tmp_path / "blur.png"
    code, _, _ = run(capsys, "filter", image, "--kernel", "mean", "--per-channel", "--out",
                     out_file)
    assert code == 0 and read_image(out_file).shape == (44, 60, 3)


@pytest.mark.parametrize("argv, fragments", [
    (["viz", "receptive-field", "nonet", "--layer", "x"], ["unknown model 'nonet'"]),
    (["viz", "receptive-field", "lenet5", "--layer", "conv9"],
     ["no layer named 'conv9' in lenet5", "features.0"]),
    (["viz", "receptive-field", "lenet5", "--layer", "classifier.0"],
     ["has no spatial output"]),
    (["viz", "receptive-field", "lenet5", "--layer", "features.0", "--input", "1x28"],
     ["--input must look like"]),
    (["viz", "conv", "--kernel", "7", "--input", "5x5", "--out", "{tmp}/x.gif"],
     ["kernel 7 (dilated span 7) does not fit the input height 5"]),
    (["viz", "conv", "--input", "5by5", "--out", "{tmp}/x.gif"], ["--input must look like 5x5"]),
    (["viz", "conv", "--out", "{tmp}/x.mp4"], ["must end in .gif"]),
    (["viz", "filters", "--checkpoint", "{tmp}/nowhere"], ["run folder not found"]),
    (["filter", "{tmp}/missing.png", "--kernel", "edge", "--out", "{tmp}/o.png"],
     ["image not found"]),
    (["filter", "{tmp}/junk.png", "--kernel", "edge", "--out", "{tmp}/o.png"],
     ["cannot read image"]),
    (["filter", "{tmp}/tiny.png", "--kernel", "mean", "--out", "{tmp}/o.png"],
     ["kernel 5x5 does not fit the image 3x3"]),
    (["filter", "{tmp}/tiny.png", "--kernel", "blur", "--out", "{tmp}/o.png"],
     ["unknown kernel 'blur'"]),
    (["filter", "{tmp}/tiny.png", "--out", "{tmp}/o.png"], ["exactly one of --kernel"]),
    (["filter", "{tmp}/tiny.png", "--weights", "1,x", "--out", "{tmp}/o.png"],
     ["weights must be numbers"]),
])
def test_bad_input_is_one_clear_line(capsys, tmp_path, argv, fragments):
    (tmp_path / "junk.png").write_bytes(b"no image here")
    write_image(tmp_path / "tiny.png", np.zeros((3, 3)))
    code, _, err = run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert_one_line_error(code, err, *fragments)


def test_features_needs_a_real_layer(capsys, trained_run, tmp_path):
    image = write_image(tmp_path / "i.png", half_white(28, 28, 14))
    code, _, err = run(capsys, "viz", "features", "--checkpoint", trained_run, "--image", image,
                       "--layers", "conv7")
    assert_one_line_error(code, err, "no layer named 'conv7'", "conv1")


# ---- memory: refuse before allocating ----------------------------------------------------------
@pytest.fixture
def eight_gib(monkeypatch):
    from juanji import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * 2**30)


def test_filter_huge_padding_is_one_line_before_allocating(capsys, tmp_path, eight_gib):
    # padded 3 x 200048 x 200064 floats and a 200048 x 200062 response: about 1.16 TiB
    image = write_image(tmp_path / "photo.png", synthetic_photo(48, 64))
    out_file = tmp_path / "o.png"
    code, out, err = run(capsys, "filter", image, "--kernel", "edge", "--padding", "100000",
                         "--out", out_file)
    assert_one_line_error(code, err, "filtering a 48x64x3 image (36.00 KiB) with padding 100000 "
                                     "would need 1.16 TiB, have 8.00 GiB available; use less "
                                     "padding or a smaller image")
    assert out == "" and not out_file.exists()


def test_filter_with_padding_still_works(capsys, tmp_path, eight_gib):
    image = write_image(tmp_path / "half.png", half_white(50, 50, 30))
    out_file = tmp_path / "edges.png"
    code, out, _ = run(capsys, "filter", image, "--kernel", "edge", "--padding", "2", "--out",
                       out_file)
    assert code == 0 and "54x52 response" in out
    assert read_image(out_file).shape == (54, 52)
