"""`juanji summary` and `juanji explain`, including every kind of bad input."""

import json

import pytest
from cli_checks import assert_one_line_error, run


def test_summary_table(capsys):
    code, out, _ = run(capsys, "summary", "simple_convnet", "--input", "1x28x28")
    assert code == 0
    assert out.splitlines()[0] == "simple_convnet on input [1, 1, 28, 28]"
    assert "conv1 (Conv2d)" in out and "432,000" in out
    assert "MACs: 865,000" in out and "FLOPs = 2 x MACs: 1,730,000" in out


def test_summary_json_batch_and_file(capsys, tmp_path):
    out_file = tmp_path / "s.json"
    code, out, err = run(capsys, "summary", "lenet5", "--batch-size", "2", "--json",
                         "--out", str(out_file))
    assert code == 0
    data = json.loads(out)
    assert data["batch_size"] == 2 and data["input_size"] == [1, 28, 28]
    assert data["totals"]["macs"] == 2 * 416_520
    assert json.loads(out_file.read_text()) == data
    assert f"wrote {out_file}" in err


def test_summary_depth_folds_blocks(capsys):
    code, out, _ = run(capsys, "summary", "lenet5", "--depth", "0")
    assert code == 0
    assert "features (Sequential) ..." in out and "features.0" not in out
    assert "(357,600)" in out  # the block's MAC subtotal


@pytest.mark.parametrize("argv, fragments", [
    (["summary", "resnet9000"], ["unknown model 'resnet9000'", "simple_convnet"]),
    (["summary", "lenet5", "--input", "1x28"], ["--input must look like 3x224x224", "'1x28'"]),
    (["summary", "lenet5", "--input", "axbxc"], ["--input must look like"]),
    (["summary", "simple_convnet", "--input", "1x28x30"],
     ["cannot run on an input of shape [1, 1, 28, 30]"]),
    (["summary", "simple_convnet", "--input", "1x4x4"], ["input_size must be >= 6"]),
    (["summary", "lenet5", "--batch-size", "0"], ["--batch-size must be an integer >= 1"]),
    (["explain", "conv2d", "--input", "1x28x28", "--out-channels", "30", "--kernel", "31"],
     ["kernel 31 (dilated span 31) does not fit the input height 28"]),
    (["explain", "conv3d", "--input", "1x28x28", "--kernel", "3"],
     ["OP must be one of conv2d, pool, conv-transpose"]),
    (["explain", "conv2d", "--input", "1x28x28", "--kernel", "3"],
     ["--out-channels is required for conv2d"]),
    (["explain", "pool", "--input", "28x28", "--kernel", "2"], ["--input must look like 1x28x28"]),
    (["explain", "conv2d", "--input", "1x28x28", "--out-channels", "3", "--kernel", "3",
      "--ceil-mode"], ["--ceil-mode applies to pool only"]),
    (["explain", "pool", "--input", "1x28x28", "--kernel", "2", "--stride", "-1"],
     ["--stride must be an integer >= 1"]),
])
def test_bad_input_is_one_clear_line(capsys, argv, fragments):
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, *fragments)


def test_explain_conv2d_seed_example(capsys):
    code, out, _ = run(capsys, "explain", "conv2d", "--input", "1x28x28", "--out-channels",
                       "30", "--kernel", "5", "--stride", "1", "--padding", "0")
    assert code == 0
    assert "(30, 24, 24)" in out and "780" in out and "432,000" in out


def test_explain_pool_ceil_and_transpose_json(capsys):
    code, out, _ = run(capsys, "explain", "pool", "--input", "1x5x5", "--kernel", "2",
                       "--ceil-mode")
    assert code == 0 and "(1, 3, 3)" in out
    code, out, _ = run(capsys, "explain", "conv-transpose", "--input", "16x7x7",
                       "--out-channels", "8", "--kernel", "4", "--stride", "2", "--padding",
                       "1", "--json")
    assert code == 0
    assert json.loads(out)["result"]["output_shape"] == [8, 14, 14]


# ---- memory: refuse before allocating ----------------------------------------------------------
@pytest.fixture
def eight_gib(monkeypatch):
    from juanji import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * 2**30)


def test_summary_huge_batch_is_one_line_before_allocating(capsys, eight_gib):
    # 100000 x (input + activations) of resnet18 is terabytes; it used to end in a MemoryError
    code, out, err = run(capsys, "summary", "resnet18", "--batch-size", "100000")
    assert_one_line_error(code, err, "tracing ResNet on a batch of 100000 x [3, 224, 224]",
                          "of input and activations per sample) would need",
                          "TiB, have 8.00 GiB available; use a smaller batch size")
    assert out == ""


def test_summary_huge_input_is_one_line(capsys, eight_gib):
    # 3e10 values, drawn in float64 and cast to float32: 12 bytes each
    code, _, err = run(capsys, "summary", "resnet18", "--input", "3x100000x100000")
    assert_one_line_error(code, err, "a random input of shape [1, 3, 100000, 100000] would "
                                     "need 335.28 GiB, have 8.00 GiB available")


def test_summary_with_a_batch_that_fits_still_works(capsys, eight_gib):
    code, out, _ = run(capsys, "summary", "simple_convnet", "--input", "1x28x28",
                       "--batch-size", "64")
    assert code == 0
    assert out.splitlines()[0] == "simple_convnet on input [64, 1, 28, 28]"
    assert "MACs: 55,360,000" in out  # 64 x 865,000
