"""juanji.onnx.load on hand-built graphs: weights become trainable layers, gradients pass the
finite-difference check, batch norm trains, dynamic sizes work, PyTorch's export matches, and
bad files give one clear error naming the node, input or tensor."""

import io
import os
import sys

import numpy as np
import onnx
import pytest
import torch
from gradcheck import gradcheck
from onnx import TensorProto, helper, numpy_helper

import juanji
import juanji.onnx
from juanji.onnx import OnnxImportError


def _cnn(dtype=np.float64, opset=17, batch="N"):
    """x (N, 3, H, W) -> Conv(3->4, 3x3, pads 1) -> BatchNormalization -> Relu ->
    GlobalAveragePool -> Flatten -> Gemm (transB, weight from a Constant node) -> y (N, 2)."""
    rng = np.random.default_rng(1)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    conv_w = rng.standard_normal((4, 3, 3, 3)).astype(dtype) * 0.3
    init = [numpy_helper.from_array(a.astype(dtype), name) for name, a in (
        ("conv.w", conv_w), ("conv.b", rng.standard_normal(4)),
        ("bn.scale", 1 + 0.1 * rng.standard_normal(4)), ("bn.bias", rng.standard_normal(4)),
        ("bn.mean", rng.standard_normal(4) * 0.1), ("bn.var", 1 + rng.random(4)),
        ("fc.b", rng.standard_normal(2)))]
    fc_w = numpy_helper.from_array(rng.standard_normal((2, 4)).astype(dtype), "fc.w_value")
    nodes = [
        helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], "/features/conv/Conv",
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "bn.scale", "bn.bias", "bn.mean",
                                                "bn.var"], ["b"], "/features/bn/BatchNorm"),
        helper.make_node("Relu", ["b"], ["r"], "/features/relu/Relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], "/pool/GlobalAveragePool"),
        helper.make_node("Flatten", ["p"], ["f"], "/flatten/Flatten"),
        helper.make_node("Constant", [], ["fc.w"], "/fc/Constant", value=fc_w),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], "/fc/Gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", elem, [batch, 3, "H", "W"])],
        [helper.make_tensor_value_info("y", elem, [batch, 2])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _reference(model_proto, x, training=False):
    """The same graph computed with torch.nn.functional from the file's arrays."""
    import torch.nn.functional as TF

    def tensor(proto):
        return torch.tensor(numpy_helper.to_array(proto).astype(x.dtype))

    arrays = {t.name: tensor(t) for t in model_proto.graph.initializer}
    fc_w = tensor(model_proto.graph.node[5].attribute[0].t)
    y = TF.conv2d(torch.tensor(x), arrays["conv.w"], arrays["conv.b"], padding=1)
    y = TF.batch_norm(y, arrays["bn.mean"].clone(), arrays["bn.var"].clone(),
                      arrays["bn.scale"], arrays["bn.bias"], training=training)
    y = TF.relu(y).mean((2, 3))
    return (y @ fc_w.T + arrays["fc.b"]).numpy()


def test_weights_become_named_layers_in_state_dict():
    model = juanji.onnx.load(_cnn().SerializeToString())
    keys = set(model.state_dict())
    assert {"features_conv_Conv.weight", "features_conv_Conv.bias",
            "features_bn_BatchNorm.weight", "features_bn_BatchNorm.bias",
            "features_bn_BatchNorm.running_mean", "features_bn_BatchNorm.running_var",
            "fc_Gemm.weight", "fc_Gemm.bias"} <= keys
    assert isinstance(model.features_conv_Conv, juanji.nn.Conv2d)
    assert isinstance(model.features_bn_BatchNorm, juanji.nn.BatchNorm2d)
    assert isinstance(model.fc_Gemm, juanji.nn.Linear)  # its weight came from a Constant node
    assert sum(p.numel() for p in model.parameters()) == 4 * 27 + 4 + 4 + 4 + 8 + 2
    assert not model.training


@pytest.mark.parametrize("shape", [(1, 3, 5, 5), (3, 3, 7, 6)])  # dynamic batch and size
def test_forward_matches_torch_in_eval_and_train(shape):
    proto = _cnn(np.float32)
    model = juanji.onnx.load(proto.SerializeToString())
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(model(x).data, _reference(proto, x), rtol=1e-5, atol=1e-5)
    model.train()
    bn = model.features_bn_BatchNorm
    before = bn.running_mean.data.copy()
    np.testing.assert_allclose(model(juanji.tensor(x)).data, _reference(proto, x, True),
                               rtol=1e-4, atol=1e-5)
    assert not np.allclose(bn.running_mean.data, before)  # batch norm trains in train()


def test_imported_weights_pass_the_finite_difference_check():
    model = juanji.onnx.load(_cnn(np.float64).SerializeToString())
    conv, fc = model.features_conv_Conv, model.fc_Gemm
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 4))
    # the loss reaches every imported parameter
    model(x).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name

    def f(x, conv_w, fc_w):
        conv.weight, fc.weight = conv_w, fc_w
        return model(x)

    gradcheck(f, [x, conv.weight.data.copy(), fc.weight.data.copy()])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript-based exporter
def test_torch_exported_cnn_matches_torch():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.BatchNorm2d(8),
        torch.nn.Hardswish(), torch.nn.MaxPool2d(3, 2, ceil_mode=True),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.nn.LeakyReLU(0.1),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5),
        torch.nn.Softmax(1)).eval()
    buffer = io.BytesIO()
    torch.onnx.export(net, torch.randn(1, 3, 16, 16), buffer, dynamo=False, opset_version=13,
                      input_names=["x"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
    model = juanji.onnx.load(buffer.getvalue())
    for shape in ((1, 3, 16, 16), (2, 3, 19, 23)):
        x = torch.randn(*shape)
        with torch.no_grad():
            want = net(x).numpy()
        np.testing.assert_allclose(model(x.numpy()).data, want, rtol=1e-5, atol=1e-6)


# ---- bad input ------------------------------------------------------------------------------

def test_not_an_onnx_file():
    with pytest.raises(OnnxImportError, match="is not an ONNX model"):
        juanji.onnx.load(b"\x89PNG\r\n\x1a\n this is an image, not a model")
    with pytest.raises(OnnxImportError, match="is not an ONNX model"):
        juanji.onnx.load(b"")


def test_truncated_file():
    data = _cnn().SerializeToString()
    with pytest.raises(OnnxImportError, match="not an ONNX model|declares .* bytes"):
        juanji.onnx.load(data[: len(data) // 2])


def test_unsupported_ops_are_listed_in_one_error_before_anything_runs():
    proto = _cnn()
    proto.graph.node.insert(3, helper.make_node("Einsum", ["r"], ["e"], "odd_einsum",
                                                equation="ij->ji"))
    proto.graph.node.append(helper.make_node("NonMaxSuppression", ["y"], ["z"], "my_nms"))
    proto.graph.node.append(helper.make_node("FusedConv", ["y"], ["w"], "ms_op",
                                             domain="com.microsoft"))
    with pytest.raises(OnnxImportError) as info:
        juanji.onnx.load(proto.SerializeToString())
    message = str(info.value)
    assert "3 node(s)" in message
    assert "'odd_einsum' (Einsum, opset 17): unsupported op" in message
    assert "'my_nms' (NonMaxSuppression, opset 17)" in message
    assert "'ms_op' (FusedConv, opset 17): domain 'com.microsoft'" in message


def test_unsupported_attribute_is_refused_at_load():
    proto = _cnn()
    proto.graph.node[0].attribute.append(helper.make_attribute("kernel_shape", [3, 3, 3]))
    proto.graph.node[0].input[1] = "x"  # a runtime weight: only kernel_shape tells the rank
    with pytest.raises(OnnxImportError, match="'/features/conv/Conv' .*3-D kernel"):
        juanji.onnx.load(proto.SerializeToString())


def test_wrong_rank_or_size_at_call_names_the_input_or_node():
    model = juanji.onnx.load(_cnn(np.float32).SerializeToString())
    with pytest.raises(ValueError, match=r"input 'x' must have rank 4 \(shape \['N', 3"):
        model(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="input 'x' must have size 3 in dim 1"):
        model(np.zeros((1, 4, 8, 8), np.float32))
    with pytest.raises(ValueError, match="the model takes 1 input"):
        model(np.zeros((1, 3, 8, 8)), np.zeros(1))


def test_error_inside_a_node_names_the_node():
    proto = _cnn(np.float32)
    proto.graph.input[0].type.tensor_type.ClearField("shape")  # undeclared: the node checks
    model = juanji.onnx.load(proto.SerializeToString())
    with pytest.raises(ValueError, match="node '/features/conv/Conv' \\(Conv\\)"):
        model(np.zeros((1, 3, 8), np.float32))


@pytest.mark.parametrize("gradients", [False, True], ids=["no_grad (one fused pass)", "grad"])
def test_bad_input_to_a_conv_names_the_node_in_its_fused_pass_too(gradients):
    # channels and sizes the graph leaves open: under no_grad the Conv -> Relu run is one
    # conv pass (OnnxModule._fused_conv), which checks what the layer's conv2d would
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], "conv", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"], "relu")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "C", "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    model = juanji.onnx.load(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()).eval()
    assert model._conv_chains  # the run is found: no_grad takes the fused pass
    with juanji.set_grad_enabled(gradients):
        assert model(np.ones((1, 3, 5, 5), np.float32)).shape == (1, 4, 5, 5)
        with pytest.raises(ValueError, match=r"node 'conv' \(Conv\): conv2d expects input "
                                             r"channels = .* 3 \* 1; got input with 5"):
            model(np.ones((1, 5, 8, 8), np.float32))
        with pytest.raises(ValueError, match=r"node 'conv' \(Conv\): kernel height 3 "
                                             r"\(dilated span 3\) is larger than the padded"):
            model(np.ones((1, 3, 0, 8), np.float32))


def test_missing_onnx_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'juanji\[onnx\]'"):
        juanji.onnx.load(b"anything")


# ---- external data ---------------------------------------------------------------------------

def _external(folder, location, nbytes=None, data=b""):
    """A model whose Conv weight lives in external data at `location`; returns its path."""
    proto = _cnn(np.float32)
    weight = proto.graph.initializer[0]
    if data:
        with open(os.path.join(folder, "weights.bin"), "wb") as f:
            f.write(data)
    weight.ClearField("raw_data")
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"),
                       ("length", str(nbytes or 4 * 108))):
        weight.external_data.add(key=key, value=value)
    path = os.path.join(folder, "model.onnx")
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return path


def test_external_data_next_to_the_model_is_read(tmp_path):
    weights = np.arange(108, dtype=np.float32) / 100
    path = _external(tmp_path, "weights.bin", data=weights.tobytes())
    model = juanji.onnx.load(path)
    np.testing.assert_array_equal(model.features_conv_Conv.weight.data.reshape(-1), weights)
    with pytest.raises(OnnxImportError, match="load the model from its path"):
        juanji.onnx.load(open(path, "rb").read())


@pytest.mark.parametrize("location", ["../weights.bin", "/etc/passwd", "sub/../../x.bin"])
def test_external_data_outside_the_folder_is_refused(tmp_path, location):
    folder = tmp_path / "model"
    folder.mkdir()
    path = _external(folder, location)
    with pytest.raises(OnnxImportError, match="tensor 'conv.w': external-data location"):
        juanji.onnx.load(path)


def test_external_data_symlink_out_of_the_folder_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "outside.bin").write_bytes(b"\0" * 432)
    os.symlink(tmp_path / "outside.bin", folder / "link.bin")
    path = _external(folder, "link.bin")
    with pytest.raises(OnnxImportError, match="leaves the model's folder"):
        juanji.onnx.load(path)


def test_missing_or_short_external_data_is_refused(tmp_path):
    path = _external(tmp_path, "absent.bin")
    with pytest.raises(OnnxImportError, match="'absent.bin' is missing"):
        juanji.onnx.load(path)
    path = _external(tmp_path, "weights.bin", data=b"\0" * 100)  # 432 bytes declared
    with pytest.raises(OnnxImportError, match="declares 432 bytes"):
        juanji.onnx.load(path)


def test_declared_size_beyond_the_data_is_refused_before_allocation():
    proto = _cnn(np.float32)
    proto.graph.initializer[0].dims[:] = [4096, 4096, 1024, 1]  # 64 GiB declared
    with pytest.raises(OnnxImportError, match="tensor 'conv.w' declares .* over the limit"):
        juanji.onnx.load(proto.SerializeToString())
    proto.graph.initializer[0].dims[:] = [4, 3, 3, 4]  # more than the 108 values it holds
    with pytest.raises(OnnxImportError, match="declares 576 bytes .* but holds 432"):
        juanji.onnx.load(proto.SerializeToString())


def test_float16_weights_load_as_float32():
    proto = _cnn(np.float16)
    model = juanji.onnx.load(proto.SerializeToString())
    assert model.features_conv_Conv.weight.dtype == np.float32
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 6)).astype(np.float16)
    y = model(x)
    assert y.dtype == np.float32
    want = _reference(_cnn(np.float16), x.astype(np.float32))
    np.testing.assert_allclose(y.data, want, rtol=1e-5, atol=1e-5)


def test_onnx_checker_accepts_the_test_graph():
    onnx.checker.check_model(_cnn(), full_check=True)
