"""What a small network's training step spends outside the kernels: Python and dispatch.

    python -m benchmarks.overhead [--model lenet5] [--batch 128] [--repeats 200]

Runs the step (zero_grad, forward, cross-entropy, backward, SGD with momentum) of a zoo model
three ways in one process: as it is; with every op's kernel replaced by an empty one that
hands back the arrays the real kernel returned for that call, and the attributes it left on
the op (a batch norm's statistics), so autograd, module calls, argument checks, Tensor
wrapping and the optimizer all still run, on the same shapes; and the
optimizer step alone. The empty-kernel step is the framework's overhead; divided by the number
of op calls it is the cost per op.
"""

import argparse
import statistics
import time

import numpy as np

import juanji
from benchmarks.common import juanji_train_step
from juanji import models, optim
from juanji.function import Function


def _op_classes():
    found, todo = set(), [Function]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


class EmptyKernels:
    """Context: record each op call's outputs during one step, then replay them."""

    def __init__(self):
        self.records, self.position, self.replaying = [], 0, False
        self.saved = {}

    def __enter__(self):
        for cls in _op_classes():
            self.saved[cls] = (cls.__dict__.get("forward"), cls.__dict__.get("backward"))
            cls.forward = self._wrap(cls.forward)
            cls.backward = self._wrap(cls.backward)
        return self

    def __exit__(self, *exc):
        for cls, (forward, backward) in self.saved.items():
            for name, original in (("forward", forward), ("backward", backward)):
                if original is None:
                    delattr(cls, name)
                else:
                    setattr(cls, name, original)

    def _wrap(self, kernel):
        def run(fn, *args, **kwargs):
            if self.replaying:
                out, state = self.records[self.position]
                self.position += 1
                fn.__dict__.update(state)  # what callers read off the op (batch statistics)
                return out
            before = dict(fn.__dict__)
            out = kernel(fn, *args, **kwargs)
            state = {name: value for name, value in fn.__dict__.items()
                     if name not in before or before[name] is not value}  # the kernel's own
            self.records.append((out, state))
            return out

        return run

    def replay(self):
        self.replaying, self.position = True, 0


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(model_name="lenet5", batch=128, repeats=200):
    rng = np.random.default_rng(0)
    shape = (3, 32, 32) if model_name.startswith("resnet") else (1, 28, 28)
    x = rng.random((batch, *shape), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    juanji.manual_seed(0)
    model = models.create_model(model_name, num_classes=10)
    step = juanji_train_step(model, x, y)
    for _ in range(5):
        step()
    real = timed(step, repeats)
    with EmptyKernels() as empty:
        step()  # record this step's outputs
        calls = len(empty.records)

        def empty_step():
            empty.replay()
            step()

        overhead = timed(empty_step, repeats)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    opt.step()
    optimizer = timed(opt.step, repeats)
    print(f"\n{model_name} b{batch} training step, median of {repeats}")
    print(f"  whole step                      {real * 1e3:8.3f} ms")
    print(f"  with empty kernels ({calls} op calls) {overhead * 1e3:8.3f} ms "
          f"({100 * overhead / real:.1f}%), {overhead / calls * 1e6:.1f} us per call")
    print(f"  of which the SGD step           {optimizer * 1e3:8.3f} ms")
    return {"step_ms": real * 1e3, "empty_kernels_ms": overhead * 1e3, "op_calls": calls,
            "us_per_call": overhead / calls * 1e6, "sgd_ms": optimizer * 1e3}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    run(args.model, args.batch, args.repeats)
