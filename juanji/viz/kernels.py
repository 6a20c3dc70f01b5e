"""The classic hand-set kernels and `apply_kernel`, run through juanji's own conv2d.

Like every framework, conv2d is a cross-correlation: the kernel is not flipped, so 'edge'
[1, 0, -1] gives +1 where the image goes from bright (left) to dark (right).

For an RGB image the kernel is repeated over the three input channels and the channel
responses are summed into one output map, as in the seeds' example
(`w = np.repeat(w, 3, axis=1)`, one filter of shape (1, 3, KH, KW)). With mode='depthwise'
each channel is filtered on its own (groups=3), which keeps the colours (a colour blur).
"""

import numpy as np

KERNELS = {
    # the seeds' case 1: a 1x3 horizontal edge detector
    "edge": np.array([[1, 0, -1]], dtype=np.float32),
    # the seeds' case 2: the 8-neighbour Laplacian, divided by 8
    "laplacian": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float32) / 8,
    "sobel-x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32),
    "sobel-y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float32),
    # the seeds' case 3: mean blur over a 5x5 window
    "mean": np.full((5, 5), 1 / 25, dtype=np.float32),
    # binomial approximation of a Gaussian (sigma ~ 1), sums to 1
    "gaussian": np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float32) / 256,
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float32),
}


def get_kernel(name):
    """A copy of the named kernel (KH, KW) float32."""
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; choose one of {', '.join(KERNELS)}")
    return KERNELS[name].copy()


def parse_weights(text):
    """'1,0,-1' -> [[1, 0, -1]] (1x3); rows separated by ';': '1,0,-1;2,0,-2;1,0,-1' (3x3)."""
    rows = [row for row in str(text).replace(" ", "").split(";") if row]
    try:
        values = [[float(v) for v in row.split(",")] for row in rows]
    except ValueError:
        raise ValueError(f"weights must be numbers separated by ',' (rows by ';'), e.g. "
                         f"'1,0,-1'; got {text!r}") from None
    if not values or len({len(row) for row in values}) != 1:
        raise ValueError(f"weights must form a rectangle: every ';'-separated row needs the "
                         f"same number of values; got {text!r}")
    return np.array(values, dtype=np.float32)


def filter_bytes(image_shape, kernel_shape, mode="sum", stride=1, padding=0):
    """Bytes that filtering an (H, W, C) image and drawing the response needs at most: the
    float32 NCHW copy of the image, the padded copy conv2d makes (C, H+2P, W+2P), and the
    response (OC, OH, OW) in float32 plus the two float64 copies `to_uint8` makes of it.
    Pure arithmetic on shapes, so a huge padding is refused before anything is allocated."""
    h, w, c = image_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_shape, _pair(stride), _pair(padding)
    hp, wp = h + 2 * ph, w + 2 * pw
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    oc = 1 if mode == "sum" else c
    return 4 * (c * h * w + c * hp * wp) + (4 + 2 * 8) * oc * max(oh, 0) * max(ow, 0)


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def apply_kernel(image, kernel, mode="sum", stride=1, padding=0):
    """Filter an image with one hand-set kernel using juanji.nn.functional.conv2d.

    image: (H, W) or (H, W, C) array; kernel: (KH, KW) array or a name from KERNELS.
    mode 'sum' (the seeds' way) returns (OH, OW): one filter over all channels, summed;
    mode 'depthwise' returns (OH, OW, C): each channel filtered on its own.
    stride (>= 1) and padding (>= 0) are ints or (H, W) pairs.

    Raises ValueError for bad arguments, and before allocating anything when `filter_bytes`
    is more than the available memory (e.g. padding=100000).
    """
    import juanji
    from juanji.memory import check_bytes, human_bytes
    from juanji.nn import functional as F

    if isinstance(kernel, str):
        kernel = get_kernel(kernel)
    kernel = np.asarray(kernel, dtype=np.float32)
    if kernel.ndim == 1:
        kernel = kernel[None, :]
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be a 2-D (KH, KW) array; got shape {kernel.shape}")
    if mode not in ("sum", "depthwise"):
        raise ValueError(f"mode must be 'sum' or 'depthwise'; got {mode!r}")
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3:
        raise ValueError(f"image must be (H, W) or (H, W, C); got shape {np.shape(image)}")
    for name, value, low in (("stride", stride, 1), ("padding", padding, 0)):
        pair = _pair(value)
        if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                     and v >= low for v in pair):
            raise ValueError(f"{name} must be an int >= {low} or a pair of them; "
                             f"got {name}={value!r}")
    h, w, c = img.shape
    kh, kw = kernel.shape
    ph, pw = _pair(padding)
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(f"kernel {kh}x{kw} does not fit the image {h}x{w} "
                         f"(padding {padding}); use a smaller kernel or a larger image")
    check_bytes(filter_bytes(img.shape, kernel.shape, mode, stride, padding),
               f"filtering a {h}x{w}x{c} image ({human_bytes(img.nbytes)}) with padding "
               f"{padding}", "use less padding or a smaller image")
    x = juanji.tensor(np.ascontiguousarray(img.transpose(2, 0, 1))[None])  # (1, C, H, W)
    if mode == "sum":
        weight = np.repeat(kernel[None, None], c, axis=1)  # (1, C, KH, KW), as the seeds do
        groups = 1
    else:
        weight = np.repeat(kernel[None, None], c, axis=0)  # (C, 1, KH, KW)
        groups = c
    with juanji.no_grad():
        y = F.conv2d(x, juanji.tensor(weight), None, stride, padding, 1, groups)
    out = y.numpy()[0]  # (OC, OH, OW)
    return out[0] if mode == "sum" else out.transpose(1, 2, 0)
