"""Shared test oracles: float64 finite differences and PyTorch parity.

`gradcheck(f, inputs)` compares juanji's backward with central differences of
`(f(*inputs) * c).sum()` for a random upstream `c`, so a transposed or mis-scaled gradient that
an all-ones upstream would hide is caught. Inputs must be float64 arrays.
"""

import numpy as np

import juanji


def numerical_grad(scalar_fn, x, eps=1e-6):
    """Central differences of scalar_fn() with respect to the array x (changed in place)."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = scalar_fn()
        flat[i] = old - eps
        minus = scalar_fn()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(f, inputs, wrt=None, seed=0, rtol=1e-5, atol=1e-7, eps=1e-6):
    """Assert juanji gradients of f(*tensors) match finite differences for inputs in `wrt`.

    inputs: list of float64 arrays (or non-array extras passed through). Returns nothing;
    raises AssertionError naming the input whose gradient is off.
    """
    wrt = [i for i, x in enumerate(inputs) if isinstance(x, np.ndarray)] if wrt is None else wrt
    for i in wrt:
        assert inputs[i].dtype == np.float64, "gradcheck runs in float64"
    tensors = [juanji.tensor(x, requires_grad=i in wrt) if isinstance(x, np.ndarray) else x
               for i, x in enumerate(inputs)]
    out = f(*tensors)
    c = np.random.default_rng(seed).standard_normal(out.shape)
    (out * juanji.tensor(c)).sum().backward()
    for i in wrt:
        array = tensors[i].data  # perturb the very array the op reads

        def scalar():
            with juanji.no_grad():
                return float((f(*tensors).data * c).sum())

        expected = numerical_grad(scalar, array, eps)
        got = tensors[i].grad
        assert got is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i} differs from finite differences")


def to_torch(x, requires_grad=False):
    """A torch tensor with a copy of x (NumPy array or juanji Tensor)."""
    import torch

    data = x.data if isinstance(x, juanji.Tensor) else x
    return torch.tensor(np.array(data), requires_grad=requires_grad)


def assert_close(juanji_value, torch_value, rtol=1e-5, atol=1e-6, msg=""):
    """Compare a juanji Tensor/array with a torch tensor/array elementwise."""
    a = juanji_value.data if isinstance(juanji_value, juanji.Tensor) else juanji_value
    b = torch_value.detach().numpy() if hasattr(torch_value, "detach") else torch_value
    assert np.shape(a) == np.shape(b), f"{msg} shape {np.shape(a)} != torch {np.shape(b)}"
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=msg)
