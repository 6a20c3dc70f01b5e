"""`juanji onnx inspect|run|check` and `juanji summary FILE.onnx` on small hand-built and
PyTorch-exported models, including every kind of bad input (one line, non-zero exit)."""

import sys

import numpy as np
import onnx
import pytest
import torch
from cli_checks import assert_one_line_error, run
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

import juanji
import juanji.onnx
from juanji.onnx import handlers


def _save(graph, path, opset=13, producer="juanji-tests"):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name=producer, producer_version="1.0",
                              ir_version=8)  # onnxruntime 1.23 reads IR versions up to 11
    onnx.save(model, str(path))
    return path


def _classifier(path, batch="N", extra_nodes=()):
    """x [N, 3, 8, 8] -> Conv(3->4, 3x3) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(4->5)
    -> Softmax -> y [N, 5]: 108 + 4 + 20 + 5 = 137 parameters."""
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(a.astype(np.float32), name) for name, a in (
        ("w", rng.standard_normal((4, 3, 3, 3)) * 0.5), ("b", rng.standard_normal(4)),
        ("fc.w", rng.standard_normal((5, 4))), ("fc.b", rng.standard_normal(5)))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], "conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], "relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], "pool"),
             helper.make_node("Flatten", ["p"], ["f"], "flatten"),
             helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["l"], "fc", transB=1),
             helper.make_node("Softmax", ["l"], ["y"], "softmax", axis=1), *extra_nodes]
    graph = helper.make_graph(
        nodes, "classifier", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                            [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])], init)
    return _save(graph, path)


def _nhwc_two_outputs(path):
    """x [N, H, W, 1] (NHWC, dynamic H and W) -> Transpose -> Conv(1->2, 3x3, auto_pad
    SAME_UPPER) -> PRelu (slope (2, 1, 1)) -> Transpose back: y [N, H, W, 2] and its Sigmoid."""
    rng = np.random.default_rng(1)
    init = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
            for n, s in (("w", (2, 1, 3, 3)), ("slope", (2, 1, 1)))]
    nodes = [helper.make_node("Transpose", ["x"], ["t"], "to_nchw", perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "w"], ["c"], "conv", auto_pad="SAME_UPPER"),
             helper.make_node("PRelu", ["c", "slope"], ["p"], "prelu"),
             helper.make_node("Transpose", ["p"], ["y"], "to_nhwc", perm=[0, 2, 3, 1]),
             helper.make_node("Sigmoid", ["y"], ["s"], "sigmoid")]
    graph = helper.make_graph(
        nodes, "nhwc", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                      ["N", "H", "W", 1])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", "H", "W", 2])
         for n in ("y", "s")], init)
    return _save(graph, path, producer="keras2onnx")


def _unsupported(path):
    extra = [helper.make_node("Det", ["l"], ["d1"], "bad_det"),
             helper.make_node("MaxPool", ["x"], ["d2"], "bad_pool", kernel_shape=[2, 2, 2])]
    return _classifier(path, extra_nodes=extra)


# ---- inspect -------------------------------------------------------------------------------


def test_inspect_lists_inputs_outputs_opset_ops_and_parameters(capsys, tmp_path):
    code, out, _ = run(capsys, "onnx", "inspect", _classifier(tmp_path / "c.onnx"))
    assert code == 0
    assert "producer: juanji-tests 1.0" in out
    assert "opset:    ai.onnx 13" in out
    assert "input:    x float32 [N, 3, 8, 8]" in out
    assert "output:   y float32 [N, 5]" in out
    assert "6 nodes: Conv 1, Flatten 1, Gemm 1, GlobalAveragePool 1, Relu 1, Softmax 1" in out
    assert "137 float values in 4 tensors (4 initializers, 0 Constant nodes)" in out
    assert "juanji:   137 parameters in 4 tensors, 2 layers; every op is supported" in out


def test_inspect_lists_every_unsupported_node(capsys, tmp_path):
    code, out, _ = run(capsys, "onnx", "inspect", _unsupported(tmp_path / "u.onnx"))
    assert code == 0
    assert "unsupported: 2 node(s) juanji cannot run:" in out
    assert "node 'bad_det' (Det, opset 13): unsupported op" in out
    assert "node 'bad_pool' (MaxPool, opset 13)" in out and "3-D kernel" in out
    assert "every op is supported" not in out


# ---- run -----------------------------------------------------------------------------------


def test_run_image_prints_shapes_and_top_k(capsys, tmp_path):
    path = _classifier(tmp_path / "c.onnx")
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "im.png")
    code, out, _ = run(capsys, "onnx", "run", path, "--input", tmp_path / "im.png",
                       "--mean", "0.5", "--std", "0.25,0.5,1", "--top-k", "3")
    assert code == 0
    x = ((pixels / np.float32(255) - 0.5) / np.array([0.25, 0.5, 1.0], np.float32))
    x = x.transpose(2, 0, 1)[None].astype(np.float32)
    probs = juanji.onnx.load(str(path))(x).data[0]
    best = np.argsort(-probs)[:3]
    expected = ", ".join(f"{i} ({probs[i]:.4f})" for i in best)
    assert out.splitlines() == ["input: [1, 3, 8, 8]", "y: shape [1, 5]",
                                f"  sample 0: top-3: {expected}"]


def test_run_image_resizes_and_guesses_nhwc(capsys, tmp_path):
    path = _nhwc_two_outputs(tmp_path / "k.onnx")
    Image.new("L", (40, 30), 128).save(tmp_path / "grey.png")
    code, out, _ = run(capsys, "onnx", "run", path, "--input", tmp_path / "grey.png")
    assert code == 0
    assert out.splitlines() == ["input: [1, 30, 40, 1]", "y: shape [1, 30, 40, 2]",
                                "s: shape [1, 30, 40, 2]"]
    code, out, _ = run(capsys, "onnx", "run", path, "--input", tmp_path / "grey.png",
                       "--size", "12x20")
    assert code == 0 and "y: shape [1, 12, 20, 2]" in out


def test_run_npy_adds_the_batch_axis(capsys, tmp_path):
    path = _classifier(tmp_path / "c.onnx")
    np.save(tmp_path / "one.npy", np.ones((3, 8, 8), np.float32))
    np.save(tmp_path / "two.npy", np.ones((2, 3, 8, 8), np.float64))
    code, out, _ = run(capsys, "onnx", "run", path, "--input", tmp_path / "one.npy")
    assert code == 0 and out.startswith("input: [1, 3, 8, 8]\ny: shape [1, 5]\n")
    code, out, _ = run(capsys, "onnx", "run", path, "--input", tmp_path / "two.npy")
    assert code == 0 and "sample 1: top-5:" in out


@pytest.mark.parametrize("extra, fragments", [
    (["--size", "8x8"], ["--size and --layout apply to images"]),
    (["--top-k", "0"], ["--top-k must be an integer >= 1"]),
])
def test_run_bad_options_are_one_line(capsys, tmp_path, extra, fragments):
    path = _classifier(tmp_path / "c.onnx")
    np.save(tmp_path / "one.npy", np.ones((3, 8, 8), np.float32))
    code, _, err = run(capsys, "onnx", "run", path, "--input", tmp_path / "one.npy", *extra)
    assert_one_line_error(code, err, *fragments)


def test_run_bad_inputs_are_one_line(capsys, tmp_path):
    path = _classifier(tmp_path / "c.onnx")
    (tmp_path / "not.png").write_text("hello")
    np.save(tmp_path / "wrong.npy", np.ones((1, 4, 8, 8), np.float32))
    Image.new("RGB", (8, 8)).save(tmp_path / "im.png")
    cases = [
        (["--input", tmp_path / "missing.png"], ["--input: no file at", "missing.png"]),
        (["--input", tmp_path / "not.png"], ["not.png: cannot read the image"]),
        (["--input", tmp_path / "wrong.npy"], ["input 'x' must have size 3 in dim 1",
                                               "(1, 4, 8, 8)"]),
        (["--input", tmp_path / "im.png", "--mean", "1,2"], ["--mean must be 3 numbers"]),
        (["--input", tmp_path / "im.png", "--std", "0"], ["--std must not contain 0"]),
    ]
    for extra, fragments in cases:
        code, _, err = run(capsys, "onnx", "run", path, *extra)
        assert_one_line_error(code, err, *fragments)


# ---- errors shared by every action ---------------------------------------------------------


def test_files_juanji_cannot_read_or_run_are_one_line(capsys, tmp_path):
    (tmp_path / "text.onnx").write_text("not a model")
    good = _classifier(tmp_path / "c.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(good[: len(good) // 2])
    bad = _unsupported(tmp_path / "u.onnx")
    np.save(tmp_path / "x.npy", np.ones((3, 8, 8), np.float32))
    for action in (["inspect"], ["run", "--input", tmp_path / "x.npy"], ["check"]):
        for path, fragments in ((tmp_path / "missing.onnx", ["no ONNX file at"]),
                                (tmp_path / "text.onnx", ["is not an ONNX model"]),
                                (tmp_path / "cut.onnx", ["cut.onnx", "ONNX model"])):
            code, _, err = run(capsys, "onnx", action[0], path, *action[1:])
            assert_one_line_error(code, err, *fragments)
        if action != ["inspect"]:
            code, _, err = run(capsys, "onnx", action[0], bad, *action[1:])
            assert_one_line_error(code, err, "2 node(s) juanji cannot run",
                                  "'bad_det' (Det, opset 13): unsupported op", "'bad_pool'")


def test_onnx_without_an_action_is_a_usage_error(capsys):
    code, _, err = run(capsys, "onnx")
    assert code == 2
    assert_one_line_error(code, err, "choose an action: inspect, run, check or export")


# ---- check ---------------------------------------------------------------------------------


def _torch_export(path):
    """A small PyTorch CNN with batch norm, a strided grouped conv and a max pool."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.BatchNorm2d(6), torch.nn.ReLU(),
        torch.nn.Conv2d(6, 6, 3, stride=2, groups=3), torch.nn.MaxPool2d(2, ceil_mode=True),
        torch.nn.Flatten(), torch.nn.LazyLinear(4))
    net(torch.randn(1, 3, 12, 12))
    net.eval()
    torch.onnx.export(net, torch.randn(1, 3, 12, 12), str(path), dynamo=False,
                      opset_version=13, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    return path


def test_check_matches_onnxruntime(capsys, tmp_path):
    pytest.importorskip("onnxruntime")
    code, out, _ = run(capsys, "onnx", "check", _torch_export(tmp_path / "t.onnx"),
                       "--batch-size", "3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "input: x [3, 3, 12, 12]"
    assert lines[1].startswith("y: shape [3, 4], largest difference ")
    assert lines[-1].startswith("juanji matches onnxruntime: largest difference ")


def test_check_fills_dynamic_sizes_and_compares_every_output(capsys, tmp_path):
    pytest.importorskip("onnxruntime")
    path = _nhwc_two_outputs(tmp_path / "k.onnx")
    code, out, _ = run(capsys, "onnx", "check", path, "--size", "9x13", "--batch-size", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "input: x [2, 9, 13, 1]"
    assert lines[1].startswith("y: shape [2, 9, 13, 2], largest difference ")
    assert lines[2].startswith("s: shape [2, 9, 13, 2], largest difference ")
    code, out, _ = run(capsys, "onnx", "check", path)
    assert code == 0 and out.startswith("input: x [1, 224, 224, 1]\n")
    code, _, err = run(capsys, "onnx", "check", path, "--size", "9")
    assert_one_line_error(code, err, "input 'x' [N, H, W, 1] has more dynamic dimensions "
                                     "than --size gives")


def test_check_reports_a_difference_and_exits_1(capsys, tmp_path, monkeypatch):
    """A wrong handler (Relu as the identity) must show as a difference, not pass."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setitem(handlers.HANDLERS, "Relu", lambda node, ctx: (lambda x: x))
    code, out, _ = run(capsys, "onnx", "check", _torch_export(tmp_path / "t.onnx"))
    assert code == 1
    assert "TOO LARGE" in out
    assert out.splitlines()[-1].startswith("juanji DIFFERS from onnxruntime")


def test_check_without_onnxruntime_says_how_to_install_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    code, _, err = run(capsys, "onnx", "check", _classifier(tmp_path / "c.onnx"))
    assert_one_line_error(code, err, "onnxruntime, which is not installed",
                          "pip install onnxruntime")


# ---- juanji summary FILE.onnx ----------------------------------------------------------------


def test_summary_of_an_onnx_file(capsys, tmp_path):
    path = _classifier(tmp_path / "c.onnx", batch=1)
    code, out, _ = run(capsys, "summary", path)
    assert code == 0
    assert out.splitlines()[0] == f"{path} on input [1, 3, 8, 8]"
    assert "conv (Conv2d)" in out and "fc (Linear)" in out
    # conv 4*8*8*3*3*3 = 6,912 MACs and fc 20: exact, worked out by hand
    assert "Params: 137 total" in out and "MACs: 6,932" in out


def test_summary_of_an_onnx_file_with_dynamic_sizes(capsys, tmp_path):
    path = _nhwc_two_outputs(tmp_path / "k.onnx")
    code, _, err = run(capsys, "summary", path)
    assert_one_line_error(code, err, "input 'x' has shape [N, H, W, 1] with dynamic sizes",
                          "--input 224x224x1")
    code, out, _ = run(capsys, "summary", path, "--input", "10x12x1")
    assert code == 0 and "MACs: 2,160" in out  # 2 * 10 * 12 * 1 * 3 * 3
    code, _, err = run(capsys, "summary", path, "--input", "3x10x12")
    assert_one_line_error(code, err, "input 'x' must have size 1 in dim 3")
    code, _, err = run(capsys, "summary", path, "--input", "10x12x1", "--num-classes", "3")
    assert_one_line_error(code, err, "--num-classes does not apply to an ONNX model")


# ---- export --------------------------------------------------------------------------------


def test_export_a_zoo_model(capsys, tmp_path):
    path = tmp_path / "lenet5.onnx"
    code, out, _ = run(capsys, "onnx", "export", "lenet5", "--out", path)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"wrote {path} (opset 17, checked with onnx.checker full_check)"
    assert lines[1].split() == ["input:", "input", "float32", "[N,", "1,", "28,", "28]"]
    assert lines[2].split() == ["output:", "output", "float32", "[N,", "10]"]
    # 2 convs and 3 linears, weight and bias each; the 11th initializer is a Reshape's shape
    assert lines[3] == "  parameters: 61,706 in 10 tensors (11 initializers in the file)"
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 17
    keys = set(juanji.models.create_model("lenet5").state_dict())
    assert sum(int(np.prod(t.dims)) for t in proto.graph.initializer if t.name in keys) == 61706
    loaded = juanji.onnx.load(path)
    with juanji.no_grad():  # a dynamic batch: any batch size runs
        assert loaded(np.zeros((3, 1, 28, 28), np.float32)).shape == (3, 10)


def test_export_with_input_size_opset_and_a_fixed_batch(capsys, tmp_path):
    path = tmp_path / "cnn.onnx"
    code, out, _ = run(capsys, "onnx", "export", "simple_convnet", "--out", path,
                       "--input", "3x32x32", "--opset", "13", "--batch", "4")
    assert code == 0
    assert "input:  input float32 [4, 3, 32, 32]" in out
    assert "output: output float32 [4, 1000]" in out
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 13


def test_export_a_run_folder_keeps_its_weights(capsys, tmp_path):
    from juanji.io.checkpoint import save_run
    from juanji.models import create_model

    juanji.manual_seed(3)
    model = create_model("lenet5", num_classes=7)
    save_run(tmp_path / "run", model, {"model": "lenet5", "model_args": {"num_classes": 7}})
    path = tmp_path / "run.onnx"
    code, out, _ = run(capsys, "onnx", "export", tmp_path / "run", "--out", path)
    assert code == 0
    assert "output: output float32 [N, 7]" in out
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    state = model.state_dict()
    assert set(state) <= set(weights)
    for key, value in state.items():
        np.testing.assert_array_equal(weights[key], value.data)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    with juanji.no_grad():
        np.testing.assert_allclose(juanji.onnx.load(path)(x).data, model.eval()(x).data,
                                   rtol=1e-5, atol=1e-6)


class _DeformNet(juanji.nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.offsets = juanji.nn.Conv2d(in_channels, 18, 3, padding=1)
        self.deform = juanji.nn.DeformConv2d(in_channels, num_classes, 3, padding=1)

    def forward(self, x):
        return self.deform(x, self.offsets(x))


def test_export_errors_are_one_line(capsys, tmp_path, monkeypatch):
    from juanji.models import MODELS

    out = tmp_path / "x.onnx"
    code, _, err = run(capsys, "onnx", "export", "no_such_model", "--out", out)
    assert_one_line_error(code, err, "'no_such_model' is neither a run folder nor a model "
                                     "name; models: alexnet,")
    code, _, err = run(capsys, "onnx", "export", "lenet5", "--out", out, "--opset", "12")
    assert_one_line_error(code, err, "--opset must be an integer >= 13; got '12'")
    code, _, err = run(capsys, "onnx", "export", "lenet5", "--out", out, "--opset", "99")
    assert_one_line_error(code, err, "opset must be an int in [13, ")
    code, _, err = run(capsys, "onnx", "export", "lenet5", "--out", out, "--batch", "0")
    assert_one_line_error(code, err, "--batch must be an integer >= 1; got '0'")
    code, _, err = run(capsys, "onnx", "export", tmp_path, "--out", out)
    assert_one_line_error(code, err, "is not a run folder: no run.json in it")
    monkeypatch.setitem(MODELS, "deform_net", _DeformNet)
    code, _, err = run(capsys, "onnx", "export", "deform_net", "--out", out, "--input", "3x8x8")
    assert_one_line_error(code, err, "cannot export to ONNX:", "DeformConv2d in layer 'deform'")
    assert not out.exists()


# ---- juanji viz features --model FILE.onnx ---------------------------------------------------


def test_viz_features_of_an_onnx_file(capsys, tmp_path):
    path = _classifier(tmp_path / "c.onnx")
    pixels = np.random.default_rng(3).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "im.png")
    code, out, _ = run(capsys, "viz", "features", "--model", path, "--image", tmp_path / "im.png")
    assert code == 0
    assert "features_im.png" in out and "conv 4x8x8" in out
    drawn = np.asarray(Image.open(tmp_path / "features_im.png"))
    assert drawn.ndim == 3 and drawn.std() > 0
    dynamic = _nhwc_two_outputs(tmp_path / "k.onnx")
    code, _, err = run(capsys, "viz", "features", "--model", dynamic, "--image",
                       tmp_path / "im.png")
    assert_one_line_error(code, err, "with dynamic sizes; give them with --input")
    code, _, err = run(capsys, "viz", "features", "--image", tmp_path / "im.png")
    assert code == 2 and "give one of --checkpoint RUN and --model FILE.onnx" in err
