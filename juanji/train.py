"""Trainer: fit, evaluate, checkpoint, resume. Readable in one sitting.

One epoch = one pass over `train_loader` (batches of NumPy arrays), one optimizer step per
batch, then an evaluation on `test_loader`. After every epoch the run folder gets the weights,
the optimizer and scheduler state, the metrics history, the curves and the first layer's
filters (`filters_initial.png` is drawn before training starts), all written atomically,
so Ctrl-C at any moment leaves the last finished epoch's checkpoint whole.
"""

import time
from pathlib import Path

from tqdm import tqdm

import juanji
from juanji.io.checkpoint import save_run
from juanji.io.files import atomic_write_text
from juanji.nn import Conv2d
from juanji.nn import functional as F
from juanji.nn.utils import clip_grad_norm_
from juanji.optim.lr_scheduler import ReduceLROnPlateau
from juanji.viz.filters import save_filters


class Trainer:
    """Train `model` with `optimizer` on batches from `train_loader`.

    loss_fn(logits, labels) -> scalar Tensor (default: cross-entropy). `scheduler` steps once
    per batch if its `per_batch` attribute is true, else once per epoch (ReduceLROnPlateau gets
    the test loss). `regularizer` (e.g. optim L1) is called after every optimizer step.
    `callbacks` are plain callables `cb(trainer, record)` run after each epoch.
    """

    def __init__(self, model, optimizer, train_loader, test_loader=None, loss_fn=None,
                 scheduler=None, run_dir=None, config=None, clip_grad=None, regularizer=None,
                 callbacks=(), progress=True):
        self.model, self.optimizer = model, optimizer
        self.train_loader, self.test_loader = train_loader, test_loader
        self.loss_fn = loss_fn or F.cross_entropy
        self.scheduler, self.clip_grad, self.regularizer = scheduler, clip_grad, regularizer
        self.run_dir = Path(run_dir) if run_dir else None
        self.config = dict(config or {})
        self.callbacks, self.progress = list(callbacks), progress
        self.history, self.epoch = [], 0

    def train_epoch(self):
        """One pass over the training data; returns (mean loss, accuracy, images per second)."""
        self.model.train()
        total_loss, correct, seen = 0.0, 0, 0
        start = time.perf_counter()
        bar = tqdm(self.train_loader, desc=f"epoch {self.epoch + 1}", unit="batch",
                   disable=not self.progress, leave=True, dynamic_ncols=True)
        for images, labels in bar:
            logits = self.model(juanji.Tensor(images))
            loss = self.loss_fn(logits, labels)
            self.optimizer.zero_grad()
            loss.backward()
            if self.clip_grad:
                clip_grad_norm_(self.model.parameters(), self.clip_grad)
            self.optimizer.step()
            if self.regularizer is not None:
                self.regularizer.step()
            if self.scheduler is not None and getattr(self.scheduler, "per_batch", False):
                self.scheduler.step()
            n = len(labels)
            total_loss += loss.item() * n
            correct += int((logits.data.argmax(axis=1) == labels).sum())
            seen += n
            rate = seen / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}",
                            img_s=f"{rate:.0f}")
        bar.close()
        elapsed = time.perf_counter() - start
        return total_loss / max(seen, 1), correct / max(seen, 1), seen / elapsed

    def evaluate(self, loader=None):
        """Mean loss and accuracy over `loader` (default the test loader), in eval mode."""
        loader = loader or self.test_loader
        self.model.eval()
        total_loss, correct, seen = 0.0, 0, 0
        with juanji.no_grad():
            for images, labels in loader:
                logits = self.model(juanji.Tensor(images))
                total_loss += self.loss_fn(logits, labels).item() * len(labels)
                correct += int((logits.data.argmax(axis=1) == labels).sum())
                seen += len(labels)
        return total_loss / max(seen, 1), correct / max(seen, 1)

    def fit(self, epochs):
        """Train until `epochs` epochs are done in total (a resumed run continues its count).

        Returns the history (a list of per-epoch dicts). KeyboardInterrupt stops after the
        current batch without saving a half-finished epoch; it is re-raised to the caller.
        """
        if self.epoch == 0:
            self._save_filters("filters_initial.png", "before training")
        while self.epoch < epochs:
            start = time.perf_counter()
            train_loss, train_acc, rate = self.train_epoch()
            record = {"epoch": self.epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
                      "lr": self.optimizer.param_groups[0]["lr"], "images_per_s": rate}
            if self.test_loader is not None:
                record["test_loss"], record["test_acc"] = self.evaluate()
            record["seconds"] = time.perf_counter() - start
            self._step_epoch_scheduler(record)
            self.epoch += 1
            self.history.append(record)
            self.save()
            for callback in self.callbacks:
                callback(self, record)
        return self.history

    def _step_epoch_scheduler(self, record):
        if self.scheduler is None or getattr(self.scheduler, "per_batch", False):
            return
        if isinstance(self.scheduler, ReduceLROnPlateau):  # it watches a metric
            self.scheduler.step(record.get("test_loss", record["train_loss"]))
        else:
            self.scheduler.step()

    def save(self):
        """Write the run folder: weights, optimizer, scheduler, run.json, history CSV, curves."""
        if self.run_dir is None:
            return
        save_run(self.run_dir, self.model, self.config, self.optimizer, self.scheduler,
                 self.epoch, self.history)
        write_history_csv(self.run_dir / "history.csv", self.history)
        plot_curves(self.history, self.run_dir / "curves.png")
        self._save_filters("filters.png", f"after epoch {self.epoch}")

    def _save_filters(self, name, title):
        """The first conv layer's filters as a picture (skipped for models without one)."""
        if self.run_dir is None or not any(isinstance(m, Conv2d) for m in self.model.modules()):
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_filters(self.model, self.run_dir / name, title=title)


def write_history_csv(path, history):
    """One row per epoch, columns in first-seen order."""
    columns = []
    for record in history:
        columns += [k for k in record if k not in columns]
    lines = [",".join(columns)]
    for record in history:
        lines.append(",".join(_cell(record.get(k, "")) for k in columns))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _cell(value):
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def plot_curves(history, path):
    """Loss and accuracy per epoch (train and test) side by side, as a PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from juanji.io.files import atomic_write_bytes

    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    for split, style in (("train", "o-"), ("test", "s--")):
        if all(f"{split}_loss" in r for r in history):
            ax_loss.plot(epochs, [r[f"{split}_loss"] for r in history], style, label=split)
            ax_acc.plot(epochs, [r[f"{split}_acc"] for r in history], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())

