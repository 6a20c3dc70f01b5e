"""Seeds, 丢弃法 Dropout: the two conventions on the seeds' small arrays.

- downgrade_in_infer (Paddle's old default): training only zeroes; inference scales by 1 - p.
- upscale_in_train (PyTorch, juanji's default): training zeroes and scales the kept values by
  1 / (1 - p); inference passes everything through unchanged.

Both keep the expected output of training equal to the output of inference.

    python examples/seeds/dropout_conventions.py [--p 0.5] [--seed 100]
"""

import argparse

import numpy as np

import juanji
from juanji import nn


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=100)
    args = parser.parse_args(argv)
    p = args.p

    np.random.seed(args.seed)
    juanji.manual_seed(args.seed)
    data1 = np.random.rand(2, 3, 3, 3).astype("float32")  # (N, C, H, W): a conv output
    data2 = np.arange(1, 13).reshape([-1, 3]).astype("float32")  # (N, K): an FC output

    down = nn.Dropout(p, mode="downscale_in_infer")
    up = nn.Dropout(p, mode="upscale_in_train")
    x1, x2 = juanji.tensor(data1), juanji.tensor(data2)
    out1_1 = down.train()(x1).numpy()  # is_test=False
    out1_2 = down.eval()(x1).numpy()   # is_test=True
    out2_1 = up.train()(x2).numpy()
    out2_2 = up.eval()(x2).numpy()

    np.set_printoptions(precision=3, suppress=True)
    print("downscale_in_infer, training (kept values unchanged):\n", out1_1[0, 0])
    print(f"downscale_in_infer, inference (x * (1 - p) = x * {1 - p:g}):\n", out1_2[0, 0])
    print("upscale_in_train, training (kept values / (1 - p)):\n", out2_1)
    print("upscale_in_train, inference (unchanged):\n", out2_2)

    kept = out1_1 != 0
    assert np.array_equal(out1_1[kept], data1[kept])
    np.testing.assert_allclose(out1_2, data1 * (1 - p), rtol=1e-6)
    kept = out2_1 != 0
    np.testing.assert_allclose(out2_1[kept], data2[kept] / (1 - p), rtol=1e-6)
    assert np.array_equal(out2_2, data2)

    # the expectation of training equals inference, for both conventions
    big = juanji.tensor(np.ones((200, 500), np.float32))
    print(f"mean over 100000 ones: downscale train {down.train()(big).numpy().mean():.3f} vs "
          f"infer {down.eval()(big).numpy().mean():.3f}; upscale train "
          f"{up.train()(big).numpy().mean():.3f} vs infer {up.eval()(big).numpy().mean():.3f}")
    return out1_1, out1_2, out2_1, out2_2


if __name__ == "__main__":
    main()
