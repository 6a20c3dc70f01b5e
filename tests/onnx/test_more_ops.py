"""LRN with an even window, ReduceProd, cubic / antialiased Resize, Pow of negative bases and
3-D AveragePool through juanji.onnx.load.

onnxruntime is the oracle where it runs the case; it refuses an even LRN size (its kernel
checks size % 2 == 1) and ONNX's reference LRN loops over the batch axis instead of the
channels, so the even window is checked against the spec written out in NumPy. A Resize
with align_corners and scales whose output width scale * size is not whole is left out of
the onnxruntime grids, and so is tf_crop_and_resize with such scales: onnxruntime divides
by the rounded width, ONNX's spec and node test cases (which juanji follows) by the
unrounded one. Torch's own bicubic interpolate is the
oracle for a graph torch exported. Gradients through each op pass the float64
finite-difference check.
"""

import io
import itertools

import numpy as np
import onnxruntime
import pytest
import torch
from gradcheck import gradcheck
from onnx import TensorProto, helper, numpy_helper

import juanji
import juanji.nn.functional as F
import juanji.onnx
from juanji.onnx import OnnxImportError


def _model(nodes, inits=(), opset=18, elem=TensorProto.FLOAT, inputs=("x",)):
    graph = helper.make_graph(
        nodes, "graph", [helper.make_tensor_value_info(name, elem, None) for name in inputs],
        [helper.make_tensor_value_info(nodes[-1].output[0], elem, None)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9 if opset >= 19 else 8  # what this onnxruntime reads
    return model.SerializeToString()


def _onnxruntime(model, *arrays):
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, arrays)))[0]


def _const(name, values, dtype):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def _x(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---- LRN ------------------------------------------------------------------------------------

def _lrn_spec(x, size, alpha, beta, bias):
    """ONNX's LRN as its spec states it: channel c sums the squares of channels
    max(0, c - floor((size-1)/2)) .. min(C-1, c + ceil((size-1)/2))."""
    square_sum = np.zeros_like(x)
    channels = x.shape[1]
    for c in range(channels):
        lo = max(0, c - (size - 1) // 2)
        hi = min(channels - 1, c + -(-(size - 1) // 2))
        square_sum[:, c] = (x[:, lo:hi + 1] ** 2).sum(axis=1)
    return x / (bias + alpha / size * square_sum) ** beta


def _lrn(size, opset=13, elem=TensorProto.FLOAT):
    node = helper.make_node("LRN", ["x"], ["y"], "norm1/LRN", size=size, alpha=0.3, beta=0.8,
                            bias=1.5)
    return _model([node], opset=opset, elem=elem)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 10])
@pytest.mark.parametrize("shape", [(2, 7, 3, 3), (2, 5, 4)])
def test_lrn_matches_the_spec(size, shape):
    x = _x(shape, seed=size)
    got = juanji.onnx.load(_lrn(size))(x).data
    np.testing.assert_allclose(got, _lrn_spec(x.astype(np.float64), size, 0.3, 0.8, 1.5),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [1, 3, 5])
def test_odd_lrn_matches_onnxruntime(size):
    model, x = _lrn(size), _x((2, 7, 3, 3), seed=size)
    np.testing.assert_allclose(juanji.onnx.load(model)(x).data, _onnxruntime(model, x),
                               rtol=1e-5, atol=1e-6)


def test_even_lrn_is_not_pytorchs_window():
    """The case that needed work: PyTorch's even window sits one channel earlier."""
    x = _x((1, 6, 2, 2), seed=3)
    onnx_window = juanji.onnx.load(_lrn(4))(x).data
    torch_window = F.local_response_norm(juanji.tensor(x), 4, alpha=0.3, beta=0.8, k=1.5).data
    assert np.abs(onnx_window - torch_window).max() > 1e-3


@pytest.mark.parametrize("size", [2, 4])
def test_even_lrn_gradcheck(size):
    model = juanji.onnx.load(_lrn(size, elem=TensorProto.DOUBLE))
    gradcheck(lambda t: model(t), [_x((2, 5, 2, 3), seed=4, dtype=np.float64)])


# ---- Pow with a constant exponent -----------------------------------------------------------

def _pow(exponent, elem=TensorProto.FLOAT, opset=13):
    """Pow(x, exponent), the exponent a Constant node (as PyTorch exports x.pow(2))."""
    value = numpy_helper.from_array(np.asarray(exponent), "p")
    return _model([helper.make_node("Constant", [], ["p"], value=value),
                   helper.make_node("Pow", ["x", "p"], ["y"])], opset=opset, elem=elem)


POW_EXPONENTS = {"float 2": np.float32(2.0), "int64 3": np.int64(3),
                 "per element": np.array([2.0, 3.0, 1.0, 4.0, 0.0], dtype=np.float32)}


@pytest.mark.parametrize("exponent", POW_EXPONENTS.values(), ids=POW_EXPONENTS)
def test_pow_of_negative_bases_by_a_constant_matches_onnxruntime(exponent):
    """A constant exponent keeps the base's sign, as ONNX's Pow does: the variance of
    PyTorch's LayerNorm before opset 17, Pow(x - mean, 2), was NaN for every negative x (the
    exponent was taken for a Tensor, and a ** b computed as exp(b * log(a)))."""
    x = _x((3, 5), seed=7)
    assert (x < 0).any()
    model = _pow(exponent)
    with juanji.no_grad():
        got = juanji.onnx.load(model)(x).data
    np.testing.assert_allclose(got, _onnxruntime(model, x), rtol=1e-6, atol=1e-6)
    assert not np.isnan(got).any()


@pytest.mark.parametrize("exponent", POW_EXPONENTS.values(), ids=POW_EXPONENTS)
def test_pow_by_a_constant_gradcheck(exponent):
    exponent = exponent.astype(np.float64) if exponent.dtype == np.float32 else exponent
    model = juanji.onnx.load(_pow(exponent, elem=TensorProto.DOUBLE))
    gradcheck(lambda t: model(t), [_x((3, 5), seed=7, dtype=np.float64)])


# ---- 3-D AveragePool --------------------------------------------------------------------------

def _average_pool_3d(elem=TensorProto.FLOAT, **attrs):
    return _model([helper.make_node("AveragePool", ["x"], ["y"], **attrs)], elem=elem)


POOLS_3D = {  # ONNX's node cases check dilations and ceil mode; these, strides and pads
    "lrn window": dict(kernel_shape=[3, 1, 1], pads=[1, 0, 0, 1, 0, 0], count_include_pad=1),
    "strided, padded": dict(kernel_shape=[2, 3, 2], strides=[2, 1, 2], pads=[1, 1, 0, 0, 1, 1]),
    # (not counting pads: where a ceil-mode window runs past the end padding, onnxruntime
    # divides by the whole window, ONNX's reference and PyTorch by the cells up to the
    # padding's end, as juanji; ONNX's 3-D node cases check that one)
    "ceil": dict(kernel_shape=[3, 2, 3], strides=[2, 2, 2], ceil_mode=1,
                 pads=[1, 0, 1, 1, 1, 0]),
    "same upper": dict(kernel_shape=[2, 2, 3], strides=[2, 1, 2], auto_pad="SAME_UPPER"),
}


@pytest.mark.parametrize("attrs", POOLS_3D.values(), ids=POOLS_3D)
def test_average_pool_3d_matches_onnxruntime(attrs):
    x = _x((2, 3, 5, 6, 7), seed=3)
    model = _average_pool_3d(**attrs)
    got = juanji.onnx.load(model)(x).data
    np.testing.assert_allclose(got, _onnxruntime(model, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attrs", POOLS_3D.values(), ids=POOLS_3D)
def test_average_pool_3d_gradcheck(attrs):
    model = juanji.onnx.load(_average_pool_3d(elem=TensorProto.DOUBLE, **attrs))
    gradcheck(lambda t: model(t), [_x((1, 2, 5, 4, 5), seed=5, dtype=np.float64)])


def test_max_pool_3d_is_refused_by_name():
    model = _model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2, 2])])
    with pytest.raises(OnnxImportError, match=r"3-D kernel \[2, 2, 2\]: juanji runs 1-D and 2-D"):
        juanji.onnx.load(model)


# ---- ReduceProd -----------------------------------------------------------------------------

def _reduce_prod(opset, axes, keepdims, noop=0):
    """ReduceProd with `axes` an attribute before opset 18 and an input from 18."""
    attrs = dict(keepdims=keepdims)
    if noop:
        attrs["noop_with_empty_axes"] = 1
    if opset < 18:
        if axes is not None:
            attrs["axes"] = axes
        return _model([helper.make_node("ReduceProd", ["x"], ["y"], **attrs)], opset=opset)
    if axes is None:
        return _model([helper.make_node("ReduceProd", ["x"], ["y"], **attrs)], opset=opset)
    node = helper.make_node("ReduceProd", ["x", "axes"], ["y"], **attrs)
    return _model([node], [_const("axes", axes, np.int64)], opset=opset)


def _near_one(shape, seed):
    """Products of many of these stay in float32's range."""
    return np.random.default_rng(seed).uniform(0.6, 1.6, shape).astype(np.float32)


@pytest.mark.parametrize("opset", [11, 13, 18, 21])
@pytest.mark.parametrize("axes", [None, [1], [-1, 0], [0, 2, 3]])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_prod_matches_onnxruntime(opset, axes, keepdims):
    model, x = _reduce_prod(opset, axes, keepdims), _near_one((2, 3, 4, 5), opset)
    got, want = juanji.onnx.load(model)(x), _onnxruntime(model, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.data, want, rtol=1e-5)


def test_reduce_prod_noop_with_empty_axes():
    x = _near_one((2, 3, 4), 1)
    for opset in (18, 21):
        model = _reduce_prod(opset, [], keepdims=1, noop=1)
        np.testing.assert_array_equal(juanji.onnx.load(model)(x).data, x)
        np.testing.assert_array_equal(_onnxruntime(model, x), x)


def test_reduce_prod_of_integers_keeps_the_type():
    node = helper.make_node("ReduceProd", ["x"], ["y"], axes=[1], keepdims=0)
    model = _model([node], opset=13, elem=TensorProto.INT32)
    x = np.arange(1, 13, dtype=np.int32).reshape(3, 4) % 5
    got, want = juanji.onnx.load(model)(x), _onnxruntime(model, x)
    assert got.data.dtype == want.dtype == np.int32
    np.testing.assert_array_equal(got.data, want)


def test_reduce_prod_gradcheck_with_zeros():
    node = helper.make_node("ReduceProd", ["x"], ["y"], axes=[2], keepdims=1)
    model = juanji.onnx.load(_model([node], opset=13, elem=TensorProto.DOUBLE))
    x = np.random.default_rng(5).uniform(0.5, 1.5, (2, 3, 4))
    x[0, 1, 2] = 0.0  # one zero in its row
    x[1, 2, 0] = x[1, 2, 3] = 0.0  # two zeros in one row
    gradcheck(lambda t: model(t), [x])


# ---- Resize: cubic and antialias ------------------------------------------------------------

def _resize(opset, attrs, scales=None, sizes=None, name="up/Resize", elem=TensorProto.FLOAT,
            roi=()):
    inits = [_const("roi", roi, np.float32)]
    if scales is not None:
        inputs = ["x", "roi", "scales"]
        inits.append(_const("scales", scales, np.float32))
    else:
        inputs = ["x", "roi", "no_scales", "sizes"]  # opset 11 wants an empty scales tensor
        inits += [_const("no_scales", [], np.float32), _const("sizes", sizes, np.int64)]
    return _model([helper.make_node("Resize", inputs, ["y"], name, **attrs)], inits, opset,
                  elem)


_COORDS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]
_GEOMETRY = [dict(sizes=[2, 3, 3, 4]), dict(sizes=[2, 3, 15, 5]), dict(sizes=[2, 3, 1, 2]),
             dict(sizes=[2, 3, 2, 27]), dict(scales=[1, 1, 2, 3]),
             dict(scales=[1, 1, 3 / 7, 1 / 3])]


def _whole_widths(geometry, shape=(2, 3, 7, 9)):
    """Whether every output width scale * size is whole (always, given sizes): where it is
    not, onnxruntime maps align_corners and tf_crop_and_resize differently (see top)."""
    scales = geometry.get("scales")
    return scales is None or all(float(np.float32(s)) * n == round(float(np.float32(s)) * n)
                                 for s, n in zip(scales, shape))


_CUBIC_GRID = [(opset, coords, exclude, a, geometry)
               for opset, coords, exclude, a, geometry in itertools.product(
                   [11, 13, 19], _COORDS, [0, 1], [-0.75, -0.5], _GEOMETRY)
               if coords != "align_corners" or _whole_widths(geometry)]


@pytest.mark.parametrize("opset,coords,exclude,a,geometry", _CUBIC_GRID)
def test_cubic_resize_matches_onnxruntime(opset, coords, exclude, a, geometry):
    attrs = dict(mode="cubic", coordinate_transformation_mode=coords, exclude_outside=exclude,
                 cubic_coeff_a=a)
    model, x = _resize(opset, attrs, **geometry), _x((2, 3, 7, 9), seed=opset)
    got, want = juanji.onnx.load(model)(x), _onnxruntime(model, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.data, want, rtol=1e-5, atol=1e-5)


_ANTIALIAS_GRID = [(mode, coords, exclude, geometry)
                   for mode, coords, exclude, geometry in itertools.product(
                       ["linear", "cubic"], _COORDS, [0, 1], _GEOMETRY)
                   if coords != "align_corners" or _whole_widths(geometry)]


@pytest.mark.parametrize("mode,coords,exclude,geometry", _ANTIALIAS_GRID)
def test_antialias_resize_matches_onnxruntime(mode, coords, exclude, geometry):
    attrs = dict(mode=mode, coordinate_transformation_mode=coords, exclude_outside=exclude,
                 antialias=1)
    model, x = _resize(18, attrs, **geometry), _x((2, 3, 7, 9), seed=18)
    got, want = juanji.onnx.load(model)(x), _onnxruntime(model, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.data, want, rtol=1e-5, atol=1e-5)


def test_antialias_is_not_plain_interpolation():
    """The case that needed work: downscaling with antialias=1 blends more cells."""
    x = _x((1, 1, 12, 12), seed=6)
    plain = juanji.onnx.load(_resize(18, dict(mode="linear"), sizes=[1, 1, 3, 3]))(x).data
    smooth = juanji.onnx.load(_resize(18, dict(mode="linear", antialias=1),
                                      sizes=[1, 1, 3, 3]))(x).data
    assert np.abs(plain - smooth).max() > 1e-2


@pytest.mark.parametrize("attrs", [dict(mode="cubic"), dict(mode="cubic", exclude_outside=1),
                                   dict(mode="cubic", antialias=1),
                                   dict(mode="linear", antialias=1)])
def test_resize_gradcheck(attrs):
    model = juanji.onnx.load(_resize(18, attrs, sizes=[1, 2, 3, 7], elem=TensorProto.DOUBLE))
    gradcheck(lambda t: model(t), [_x((1, 2, 5, 4), seed=7, dtype=np.float64)])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript-based exporter
@pytest.mark.parametrize("align_corners,opset", [(False, 11), (True, 13), (False, 17)])
def test_torch_exported_bicubic_matches_torch(align_corners, opset):
    net = torch.nn.Upsample(scale_factor=2, mode="bicubic", align_corners=align_corners)
    buffer = io.BytesIO()
    torch.onnx.export(net, torch.randn(1, 2, 6, 5), buffer, dynamo=False, opset_version=opset,
                      input_names=["x"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
    model = juanji.onnx.load(buffer.getvalue())
    for shape in ((1, 2, 6, 5), (3, 2, 9, 4)):
        x = torch.randn(*shape)
        with torch.no_grad():
            want = net(x).numpy()
        np.testing.assert_allclose(model(x.numpy()).data, want, rtol=1e-5, atol=1e-5)


# ---- a small graph of all three -------------------------------------------------------------

def _graph():
    """x (N, 3, H, W) -> Conv(3->4, 3x3, pads 1) -> LRN(size 3) -> Resize(cubic, x2,
    a=-0.5) -> Resize(linear, antialias, x1/2) -> ReduceProd(axes [1]) -> y (N, H, W)."""
    rng = np.random.default_rng(8)
    inits = [_const("w", rng.standard_normal((4, 3, 3, 3)) * 0.3, np.float32),
             _const("b", rng.standard_normal(4) * 0.1, np.float32),
             _const("roi", [], np.float32), _const("up", [1, 1, 2, 2], np.float32),
             _const("down", [1, 1, 0.5, 0.5], np.float32), _const("axes", [1], np.int64)]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], "conv", pads=[1, 1, 1, 1]),
        helper.make_node("LRN", ["c"], ["n"], "lrn", size=3, alpha=0.2, beta=0.75, bias=2.0),
        helper.make_node("Resize", ["n", "roi", "up"], ["u"], "up", mode="cubic",
                         cubic_coeff_a=-0.5),
        helper.make_node("Resize", ["u", "roi", "down"], ["d"], "down", mode="linear",
                         antialias=1),
        helper.make_node("ReduceProd", ["d", "axes"], ["y"], "prod", keepdims=0),
    ]
    return _model(nodes, inits, opset=18)


def test_small_graph_matches_onnxruntime():
    model = _graph()
    imported = juanji.onnx.load(model)
    for shape in ((1, 3, 8, 8), (3, 3, 7, 10)):
        x = _x(shape, seed=shape[0])
        got, want = imported(x), _onnxruntime(model, x)
        assert got.shape == want.shape == (shape[0],) + shape[2:]
        np.testing.assert_allclose(got.data, want, rtol=1e-4, atol=1e-5)


def test_small_graph_conv_weight_gradcheck():
    imported = juanji.onnx.load(_graph())
    conv = next(m for m in imported.modules() if isinstance(m, juanji.nn.Conv2d))
    conv.weight.data = conv.weight.data.astype(np.float64)
    conv.bias.data = conv.bias.data.astype(np.float64)
    x = _x((1, 3, 4, 5), seed=9, dtype=np.float64)

    def f(w):
        conv.weight = w
        return imported(x)

    gradcheck(f, [conv.weight.data.copy()])


# ---- Resize: tf_crop_and_resize -------------------------------------------------------------

_ROIS = [[0, 0, 0.2, 0.3, 1, 1, 0.8, 1.2], [0, 0, -0.4, 0.1, 1, 1, 0.7, 0.6],
         [0, 0, 0.5, 0.5, 1, 1, 0.5, 0.5]]
_CROP_GRID = [(mode, roi, geometry, fill)
              for mode, roi, geometry, fill in itertools.product(
                  ["nearest", "linear", "cubic"], _ROIS, _GEOMETRY, [0.0, -2.5])
              if _whole_widths(geometry)]


def _crop(opset, attrs, roi, elem=TensorProto.FLOAT, **geometry):
    attrs = dict(attrs, coordinate_transformation_mode="tf_crop_and_resize")
    return _resize(opset, attrs, name="crop/Resize", elem=elem, roi=roi, **geometry)


@pytest.mark.parametrize("mode,roi,geometry,fill", _CROP_GRID)
def test_tf_crop_and_resize_matches_onnxruntime(mode, roi, geometry, fill):
    model = _crop(13, dict(mode=mode, extrapolation_value=fill), roi, **geometry)
    x = _x((2, 3, 7, 9), seed=13)
    got, want = juanji.onnx.load(model)(x), _onnxruntime(model, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.data, want, rtol=1e-5, atol=1e-5)


def test_tf_crop_and_resize_over_axes():
    """Resize-18's axes: roi holds the starts, then the ends, of the listed axes only."""
    model = _crop(19, dict(mode="linear", axes=[3, 2], extrapolation_value=7.0),
                  [0.2, 0.1, 0.9, 1.3], sizes=[5, 4])
    x = _x((2, 3, 7, 9), seed=19)
    got, want = juanji.onnx.load(model)(x), _onnxruntime(model, x)
    assert got.shape == want.shape == (2, 3, 4, 5)
    assert (want == 7.0).any()  # some cells extrapolate
    np.testing.assert_allclose(got.data, want, rtol=1e-5, atol=1e-5)


def test_tf_crop_and_resize_gradcheck():
    model = juanji.onnx.load(_crop(13, dict(mode="cubic", extrapolation_value=0.5),
                                   [0, 0, -0.2, 0.1, 1, 1, 0.9, 1.3], sizes=[1, 2, 4, 6],
                                   elem=TensorProto.DOUBLE))
    gradcheck(lambda t: model(t), [_x((1, 2, 5, 4), seed=10, dtype=np.float64)])


def test_tf_crop_and_resize_needs_its_roi():
    model = juanji.onnx.load(_crop(13, dict(mode="linear"), [0, 0, 0.1, 1, 1, 0.9],
                                   sizes=[1, 1, 3, 3]))
    with pytest.raises(ValueError, match=r"roi of 8 values .* got 6"):
        model(_x((1, 1, 4, 4)))


# ---- what stays refused ---------------------------------------------------------------------

def test_an_unknown_resize_mode_is_refused_naming_node_and_opset():
    with pytest.raises(OnnxImportError) as info:
        juanji.onnx.load(_resize(19, dict(mode="area"), sizes=[2, 3, 3, 4], name="pool/Resize"))
    line = next(line for line in str(info.value).splitlines() if "pool/Resize" in line)
    assert "'pool/Resize' (Resize, opset 19): mode='area'" in line
