"""Trainer: fit, evaluate, checkpoint, resume. Readable in one sitting.

One epoch = one pass over `train_loader` (batches of NumPy arrays), one optimizer step per
batch, then an evaluation on `test_loader`. After every epoch (and every `save_every` steps
inside one) the run folder gets a checkpoint committed as one unit (juanji.io.checkpoint): the
weights, the optimizer and scheduler, the metrics history, and the trainer's own state (epoch,
step, the partial sums of the unfinished epoch, the loader's and juanji's random generators).
Resuming from it continues bit for bit as if the run had never stopped.

Over MPI (`mpiexec -n N`, with the model wrapped in juanji.distributed.DistributedDataParallel)
every rank iterates the same global batches and trains on its slice of each; gradients are
averaged over the global batch, and the loss and accuracy sums are reduced every step, so the
history and checkpoints are those of one process. Only rank 0 shows progress and writes files.

SIGINT (Ctrl-C) and SIGTERM stop training after the current batch and commit a checkpoint of
that point (TrainingInterrupted, a KeyboardInterrupt); a second signal stops at once. A loss or
an optimizer update that is not finite stops training before anything is written
(TrainingDiverged): the last committed checkpoint stays the newest.
"""

import contextlib
import math
import signal
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import juanji
from juanji import distributed
from juanji.io.checkpoint import save_run
from juanji.io.files import atomic_write_text
from juanji.metrics import (
    confusion_matrix,
    mean_iou,
    per_class_accuracy,
    per_class_iou,
    pixel_accuracy,
)
from juanji.nn import Conv2d
from juanji.nn import functional as F
from juanji.nn.utils import clip_grad_norm_
from juanji.optim.lr_scheduler import ReduceLROnPlateau
from juanji.random import default_generator
from juanji.viz.filters import save_filters


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training; `saved` tells whether a checkpoint was committed."""

    def __init__(self, signum, epoch, step, saved):
        super().__init__(f"{signal.Signals(signum).name} at epoch {epoch + 1} step {step}")
        self.signum, self.epoch, self.step, self.saved = signum, epoch, step, saved


class TrainingDiverged(FloatingPointError):
    """The loss or an updated parameter became NaN or infinite; nothing was written for it."""


class Trainer:
    """Train `model` with `optimizer` on batches from `train_loader`.

    loss_fn(logits, labels) -> scalar Tensor (default: cross-entropy). `scheduler` steps once
    per batch if its `per_batch` attribute is true, else once per epoch (ReduceLROnPlateau gets
    the test loss). `regularizer` (e.g. optim L1) is called after every optimizer step.
    `callbacks` are plain callables `cb(trainer, record)` run after each epoch. `save_every`
    (steps) adds checkpoints inside an epoch.

    Segmentation: with masks (N, H, W) as labels and logits (N, K, H, W), accuracy is pixel
    accuracy (each image counts its fraction of correct pixels), and every epoch's record also
    has the test set's mean IoU, "test_miou"; `segmentation` tells whether the last evaluation
    was on masks.

    Counters: `epoch` (finished epochs), `step` (batches done in the unfinished epoch),
    `global_step` (optimizer steps in all).
    """

    def __init__(self, model, optimizer, train_loader, test_loader=None, loss_fn=None,
                 scheduler=None, run_dir=None, config=None, clip_grad=None, regularizer=None,
                 callbacks=(), progress=True, save_every=None):
        self.model, self.optimizer = model, optimizer
        self.ddp = model if isinstance(model, distributed.DistributedDataParallel) else None
        self.net = model.module if self.ddp is not None else model  # what checkpoints hold
        self.world, self.main = distributed.world_size(), distributed.is_main()
        self.train_loader, self.test_loader = train_loader, test_loader
        self.loss_fn = loss_fn or F.cross_entropy
        self.scheduler, self.clip_grad, self.regularizer = scheduler, clip_grad, regularizer
        self.run_dir = Path(run_dir) if run_dir else None
        self.config = dict(config or {})
        self.callbacks, self.progress, self.save_every = list(callbacks), progress, save_every
        self.history, self.epoch, self.step, self.global_step = [], 0, 0, 0
        self.partial = [0.0, 0, 0]  # loss sum, correct, seen of the unfinished epoch
        self.confusion = None  # of the last evaluation
        self.segmentation = False  # whether the last evaluation's labels were masks
        self._signal = None

    # ---- the state a checkpoint carries besides weights, optimizer and scheduler ----------------
    def state_dict(self):
        """Counters, partial sums and random generators: what makes a resume exact."""
        return {"epoch": self.epoch, "step": self.step, "global_step": self.global_step,
                "partial": list(self.partial), "loader": self.train_loader.state_dict(),
                "generator": default_generator().bit_generator.state,
                "world_size": self.world}

    def load_state_dict(self, state):
        self.epoch, self.step = state["epoch"], state["step"]
        self.global_step, self.partial = state["global_step"], list(state["partial"])
        self.train_loader.load_state_dict(state["loader"])
        default_generator().bit_generator.state = state["generator"]

    def train_epoch(self):
        """One pass over the training data; returns (mean loss, accuracy, images per second)."""
        self.model.train()
        start, seen_now = time.perf_counter(), 0
        bar = tqdm(self.train_loader, desc=f"epoch {self.epoch + 1}", unit="batch",
                   initial=self.step, total=len(self.train_loader),
                   disable=not (self.progress and self.main), leave=True, dynamic_ncols=True)
        for images, labels in bar:
            if self.world > 1:  # every rank has the global batch; each trains on its slice
                images, labels = distributed.local_batch((images, labels))
            logits = self.model(juanji.Tensor(images))
            loss = self.loss_fn(logits, labels)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise TrainingDiverged(f"the loss became {loss_value} at epoch {self.epoch + 1} "
                                       f"step {self.step + 1}")
            self.optimizer.zero_grad()
            loss.backward()
            if self.ddp is not None:
                self.ddp.sync_gradients(len(labels), step=self.global_step + 1)
            if self.clip_grad:
                clip_grad_norm_(self.model.parameters(), self.clip_grad)
            try:
                self.optimizer.step()
            except FloatingPointError as exc:
                raise TrainingDiverged(f"{exc} (epoch {self.epoch + 1} step "
                                       f"{self.step + 1})") from None
            if self.regularizer is not None:
                self.regularizer.step()
            if self.scheduler is not None and getattr(self.scheduler, "per_batch", False):
                self.scheduler.step()
            n, correct = len(labels), _correct(logits.data, labels)
            stop = self._signal is not None
            if self.world > 1:  # global sums; a signal on any rank stops every rank here
                totals = np.array([loss_value * n, correct, n, stop], np.float64)
                distributed.allreduce_sum(totals, "the step's loss and accuracy sums")
                loss_sum, n, stop = totals[0], int(totals[2]), totals[3] > 0
                correct = int(totals[1]) if labels.ndim == 1 else float(totals[1])
            else:
                loss_sum = loss_value * n
            self.partial[0] += loss_sum
            self.partial[1] += correct
            self.partial[2] += n
            self.step += 1
            self.global_step += 1
            seen_now += n
            total_loss, correct, seen = self.partial
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}",
                            img_s=f"{seen_now / (time.perf_counter() - start):.0f}")
            if stop and self.step < len(self.train_loader):
                bar.close()
                self._signal = self._signal or signal.SIGTERM
                self._stop()
            if self.save_every and self.global_step % self.save_every == 0 \
                    and self.step < len(self.train_loader):
                self.save()
        bar.close()
        total_loss, correct, seen = self.partial
        return total_loss / max(seen, 1), correct / max(seen, 1), seen_now / (
            time.perf_counter() - start)

    def evaluate(self, loader=None):
        """Mean loss and accuracy (pixel accuracy for masks) over `loader` (default the test
        loader), in eval mode.

        The confusion matrix of the pass (int64 (K, K), rows true classes; pixels for masks) is
        kept in `confusion`."""
        loader = loader or self.test_loader
        self.model.eval()
        total_loss, correct, seen, cm = 0.0, 0, 0, None
        with juanji.no_grad():
            for images, labels in loader:
                if self.world > 1:
                    images, labels = distributed.local_batch((images, labels))
                logits = self.model(juanji.Tensor(images))
                predicted = logits.data.argmax(axis=1)
                classes = logits.shape[1]
                if cm is None:
                    cm = np.zeros((classes, classes), np.float64)
                if len(labels):
                    total_loss += self.loss_fn(logits, labels).item() * len(labels)
                    cm += confusion_matrix(labels, predicted, classes)
                correct += int((predicted == labels).sum())
                seen += len(labels)
                self.segmentation = labels.ndim > 1
        if self.world > 1:
            total_loss, correct, seen = distributed.reduce_metrics(total_loss, correct, seen)
            if cm is not None:
                distributed.allreduce_sum(cm, "the confusion matrix allreduce")
        self.confusion = None if cm is None else cm.astype(np.int64)
        if self.segmentation and cm is not None:  # correct counted pixels, seen images
            return total_loss / max(seen, 1), pixel_accuracy(cm)
        return total_loss / max(seen, 1), correct / max(seen, 1)

    def fit(self, epochs):
        """Train until `epochs` epochs are done in total (a resumed run continues its count).

        Returns the history (a list of per-epoch dicts). SIGINT/SIGTERM stop after the current
        batch with a checkpoint of that point, raising TrainingInterrupted.
        """
        if self.epoch == 0 and self.step == 0:
            self._save_filters("filters_initial.png", "before training")
        with self._signals_stop_training():
            while self.epoch < epochs:
                start = time.perf_counter()
                train_loss, train_acc, rate = self.train_epoch()
                record = {"epoch": self.epoch + 1, "train_loss": train_loss,
                          "train_acc": train_acc, "lr": self.optimizer.param_groups[0]["lr"],
                          "images_per_s": rate}
                if self.test_loader is not None:
                    record["test_loss"], record["test_acc"] = self.evaluate()
                    if self.segmentation:
                        record["test_miou"] = mean_iou(self.confusion)
                    if not math.isfinite(record["test_loss"]):  # the last steps blew it up
                        raise TrainingDiverged(f"the test loss became {record['test_loss']} "
                                               f"after epoch {self.epoch + 1}")
                record["seconds"] = time.perf_counter() - start
                self._step_epoch_scheduler(record)
                self.epoch, self.step, self.partial = self.epoch + 1, 0, [0.0, 0, 0]
                self.history.append(record)
                self.save()
                for callback in self.callbacks:
                    callback(self, record)
                if self._stop_requested() and self.epoch < epochs:
                    self._stop(save=False)  # the epoch's checkpoint was just committed
        return self.history

    def _stop_requested(self):
        """Whether a signal asked to stop, on this rank or (over MPI) on any rank."""
        stop = self._signal is not None
        if self.world > 1:
            flag = np.array([stop], np.float64)
            distributed.allreduce_sum(flag, "the stop-request allreduce")
            stop = flag[0] > 0
            if stop and self._signal is None:
                self._signal = signal.SIGTERM
        return stop

    def _stop(self, save=True):
        """Commit a checkpoint of this point (unless just done) and raise TrainingInterrupted."""
        if save:
            self.save()
        raise TrainingInterrupted(self._signal, self.epoch, self.step, self.run_dir is not None)

    @contextlib.contextmanager
    def _signals_stop_training(self):
        """Within it, SIGINT/SIGTERM set a flag checked after each batch (main thread only)."""
        def handle(signum, frame):
            if self._signal is not None:  # a second signal: stop now
                raise KeyboardInterrupt
            self._signal = signum

        self._signal = None
        old = {}
        if threading.current_thread() is threading.main_thread():
            old = {signum: signal.signal(signum, handle)
                   for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in old.items():
                signal.signal(signum, handler)

    def _step_epoch_scheduler(self, record):
        if self.scheduler is None or getattr(self.scheduler, "per_batch", False):
            return
        if isinstance(self.scheduler, ReduceLROnPlateau):  # it watches a metric
            self.scheduler.step(record.get("test_loss", record["train_loss"]))
        else:
            self.scheduler.step()

    def save(self):
        """Commit a checkpoint, then redraw the history CSV, curves and filters (rank 0 writes;
        the other ranks wait for it)."""
        if self.run_dir is None:
            return
        if self.main:
            save_run(self.run_dir, self.net, self.config, self.optimizer, self.scheduler,
                     self.epoch, self.history, step=self.step, trainer_state=self.state_dict())
            if self.step == 0:  # the views change once per epoch
                write_history_csv(self.run_dir / "history.csv", self.history)
                plot_curves(self.history, self.run_dir / "curves.png")
                if self.confusion is not None:
                    write_evaluation(self.run_dir, self.confusion, self.config.get("classes"),
                                     iou=self.segmentation)
                self._save_filters("filters.png", f"after epoch {self.epoch}")
        if self.world > 1:
            distributed.barrier("the checkpoint write of rank 0")

    def _save_filters(self, name, title):
        """The first conv layer's filters as a picture (skipped for models without one)."""
        if self.run_dir is None or not self.main or \
                not any(isinstance(m, Conv2d) for m in self.net.modules()):
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_filters(self.net, self.run_dir / name, title=title)


def write_history_csv(path, history):
    """One row per epoch, columns in first-seen order."""
    columns = []
    for record in history:
        columns += [k for k in record if k not in columns]
    lines = [",".join(columns)]
    for record in history:
        lines.append(",".join(_cell(record.get(k, "")) for k in columns))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _correct(logits, labels):
    """Correct samples of a batch: logits (N, K) with labels (N,) count whole samples; logits
    (N, K, H, W) with masks (N, H, W) count each image's fraction of correct pixels, so that
    correct / seen is the pixel accuracy (every image of a batch has as many pixels)."""
    hits = int((logits.argmax(axis=1) == labels).sum())
    if labels.ndim == 1:
        return hits
    return hits / max(int(np.prod(labels.shape[1:])), 1)


def write_evaluation(run_dir, cm, classes=None, iou=False):
    """confusion.png and per_class.csv (class, accuracy) in `run_dir` from the confusion
    matrix `cm` (K, K); `classes` names the K classes (default their indices). With `iou`
    (segmentation: `cm` counts pixels) per_class.csv also has each class's IoU and the picture's
    title the pixel accuracy and mean IoU."""
    import csv
    import io

    from juanji.viz.confusion import plot_confusion_matrix

    names = [str(i) for i in range(len(cm))] if classes is None else list(classes)
    if len(names) != len(cm):  # the model's outputs are not the data's classes
        names = [str(i) for i in range(len(cm))]
    title = (f"pixels: accuracy {pixel_accuracy(cm):.2%}, mean IoU {mean_iou(cm):.3f}"
             if iou else None)
    plot_confusion_matrix(cm, Path(run_dir) / "confusion.png", class_names=names, title=title)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header, columns = ["class", "accuracy"], [per_class_accuracy(cm)]
    if iou:
        header.append("iou")
        columns.append(per_class_iou(cm))
    writer.writerow(header)
    for name, *values in zip(names, *columns):
        writer.writerow([name, *(f"{value:.6g}" for value in values)])
    atomic_write_text(Path(run_dir) / "per_class.csv", buffer.getvalue())


def _cell(value):
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def plot_curves(history, path):
    """Loss and accuracy per epoch (train and test) side by side, as a PNG; a third panel
    shows the test mean IoU when the history has it (segmentation)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from juanji.io.files import atomic_write_bytes

    epochs = [r["epoch"] for r in history]
    miou = bool(history) and all("test_miou" in r for r in history)
    fig, axes = plt.subplots(1, 3 if miou else 2, figsize=(13.5 if miou else 9, 3.5))
    ax_loss, ax_acc = axes[:2]
    for split, style in (("train", "o-"), ("test", "s--")):
        if all(f"{split}_loss" in r for r in history):
            ax_loss.plot(epochs, [r[f"{split}_loss"] for r in history], style, label=split)
            ax_acc.plot(epochs, [r[f"{split}_acc"] for r in history], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="pixel accuracy" if miou else "accuracy")
    if miou:
        axes[2].plot(epochs, [r["test_miou"] for r in history], "s--", label="test")
        axes[2].set(xlabel="epoch", ylabel="mean IoU", title="mean IoU")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())

