"""Seeds: output sizes (输出尺寸) and parameter counts (参数量), worked out step by step.

- 28x28 input, 5x5 kernel, stride 1, no padding -> 24x24; (28 - 5) / 1 + 1 = 24
- a 5x5 filter has 25 weights + 1 bias = 26 parameters; 20 filters 520, while one fully
  connected unit on the 28x28 image needs 785
- (6, 6) * (3, 3) -> (4, 4); padding (F - 1) / 2 keeps the size; stride 2 halves it
- 2x2 max-pool with stride 2 halves 24x24 to 12x12 and has no parameters
- the seeds' formulas: params = (C_in * K * K + 1) * C_out, MACs = C_in * K * K * H_out *
  W_out * C_out, FLOPs = 2 * MACs
- then the whole SimpleConvNet, layer by layer, with juanji.analysis.summary

    python examples/seeds/output_size_and_params.py [--steps]   (--steps prints every step)
"""

import argparse

from juanji.analysis import conv2d_params, explain_conv2d, explain_pool, linear_params, summary
from juanji.arithmetic import conv_output_size
from juanji.models import MODELS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", action="store_true", help="print every worked step")
    args = parser.parse_args(argv)

    first = explain_conv2d((1, 28, 28), out_channels=30, kernel_size=5)
    print(first.text() if args.steps else first.heading)
    assert first.result["output_shape"] == [30, 24, 24]

    checks = {
        "28x28 with 5x5 -> 24": conv_output_size(28, 5) == 24,
        "one 5x5 filter: 26 parameters": conv2d_params(1, 1, 5) == 26,
        "20 filters: 520 parameters": conv2d_params(1, 20, 5) == 520,
        "one FC unit on 28x28: 785": linear_params(28 * 28, 1) == 785,
        "(6,6) * (3,3) -> (4,4)": conv_output_size(6, 3) == 4,
        "padding (3-1)/2 keeps 6": conv_output_size(6, 3, padding=1) == 6,
        "stride 2 halves 224": conv_output_size(224, 3, stride=2, padding=1) == 112,
        "(3*3*3 + 1) * 64 = 1792": conv2d_params(3, 64, 3) == 1792,
    }
    for name, ok in checks.items():
        print(f"  {'ok ' if ok else 'BAD'} {name}")
    assert all(checks.values())

    pool = explain_pool((30, 24, 24), kernel_size=2)
    print(pool.text() if args.steps else pool.heading)
    assert pool.result["output_shape"] == [30, 12, 12]

    s = summary(MODELS["simple_convnet"](), (1, 28, 28), name="SimpleConvNet")
    print(s.table())
    assert s.totals["params"] == 433_890 and s.totals["macs"] == 865_000
    return s


if __name__ == "__main__":
    main()
