"""Built-in training tasks: small, real, offline and deterministic given a seed.

Each :class:`Task` builds a fresh model, an optimizer factory, a shuffled train loader, fixed validation
batches, the loss function and a metric (higher is better), and can train for N epochs at a given LR
(or along a schedule) and return the final validation metric. The LR finder's benchmark
(``bench/finder.py``), ``lrkit find --task`` and the lab use them.

=======================  =====================================================  ==========  =======
name                     data and model                                         optimizer   metric
=======================  =====================================================  ==========  =======
``digits-mlp-sgd``       scikit-learn digits (1437 train / 360 val), MLP         SGD m=0.9   accuracy
                         64-128-128-10, batch 32, 10 epochs
``digits-mlp-adam``      same                                                   Adam        accuracy
``mnist1d-cnn``          MNIST-1D (:func:`make_mnist1d`, 4000 / 1000), 1-D CNN   SGD m=0.9   accuracy
                         (3 conv + BatchNorm layers, 32 channels), batch 64,
                         15 epochs
``tinylm-transformer``   characters of a few stdlib modules' source, 2-layer      AdamW       exp(-CE)
                         causal transformer (d=64, 4 heads, context 64),
                         batch 32, 4 epochs
=======================  =====================================================  ==========  =======

The language model's metric is ``exp(-mean validation cross-entropy in nats per character)``: the
geometric-mean probability given to the true next character (1 / perplexity), in (0, 1], higher is
better; a ratio of 0.98 between two runs means 0.02 nats/char worse. A run whose metric is not finite
(it diverged) scores 0.

torch and scikit-learn are imported when a task is built, not when this module is imported.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import torch

    from lrkit.finder.result import FinderResult

__all__ = ["TASKS", "Task", "TaskParts", "TrainRun", "get_task", "make_mnist1d", "stdlib_text"]


@dataclass
class TaskParts:
    """A freshly built task: everything a training loop or the LR finder needs.

    ``make_optimizer(lr)`` returns a new optimizer over ``model``'s parameters; ``metric(model)`` scores
    the model on ``val_batches`` (higher is better); ``steps_per_epoch`` is ``len(train_loader)``.
    """

    model: torch.nn.Module
    make_optimizer: Callable[[float], torch.optim.Optimizer]
    train_loader: Iterable[Any]
    val_batches: list[Any]
    loss_fn: Callable[..., torch.Tensor]
    metric: Callable[[torch.nn.Module], float]
    steps_per_epoch: int


@dataclass(frozen=True)
class TrainRun:
    """One training run: the final validation ``metric``, the training loss of every step, whether it
    diverged (a non-finite loss; training stops there) and the number of optimizer steps taken."""

    metric: float
    losses: list[float]
    diverged: bool
    steps: int


@dataclass(frozen=True)
class Task:
    """A named, buildable training task (see the module docstring for the built-in ones)."""

    name: str
    description: str
    optimizer: str
    metric_name: str
    epochs: int
    batch_size: int
    builder: Callable[[int], TaskParts] = field(repr=False)

    def build(self, seed: int = 0) -> TaskParts:
        """Fresh model (initialised from ``seed``), optimizer factory, loaders, loss and metric.

        The data and its split are fixed; ``seed`` sets the initial weights and the batch order.
        """
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        return self.builder(seed)

    def train_run(
        self,
        lr: float | None = None,
        *,
        epochs: int | None = None,
        seed: int = 0,
        schedule: Callable[[int], float] | None = None,
    ) -> TrainRun:
        """Train from scratch for ``epochs`` (default :attr:`epochs`) at constant ``lr``, or with the LR
        ``schedule(step)`` at each optimizer step (e.g. a resolved :mod:`lrkit.schedules` schedule)."""
        import torch

        if (lr is None) == (schedule is None):
            raise ValueError(f"give exactly one of lr and schedule, got lr={lr!r}, schedule={schedule!r}")
        if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        n_epochs = self.epochs if epochs is None else epochs
        if isinstance(n_epochs, bool) or not isinstance(n_epochs, int) or n_epochs < 0:
            raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
        parts = self.build(seed)
        first = float(lr) if lr is not None else float(schedule(0))  # type: ignore[misc]
        opt = parts.make_optimizer(first)
        model, loss_fn = parts.model, parts.loss_fn
        model.train()
        losses: list[float] = []
        step = 0
        diverged = False
        for _ in range(n_epochs):
            for x, y in parts.train_loader:
                if schedule is not None:
                    for g in opt.param_groups:
                        g["lr"] = float(schedule(step))
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                value = float(loss.detach())
                losses.append(value)
                if not math.isfinite(value):
                    diverged = True
                    break
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                step += 1
            if diverged:
                break
        model.eval()
        with torch.no_grad():
            score = float(parts.metric(model))
        return TrainRun(
            metric=score if math.isfinite(score) else 0.0, losses=losses, diverged=diverged, steps=step
        )

    def train(
        self,
        lr: float | None = None,
        *,
        epochs: int | None = None,
        seed: int = 0,
        schedule: Callable[[int], float] | None = None,
    ) -> float:
        """The final validation metric of :meth:`train_run` (0 for a diverged language model)."""
        return self.train_run(lr, epochs=epochs, seed=seed, schedule=schedule).metric

    def find_lr(self, seed: int = 0, **options: Any) -> FinderResult:
        """Run :func:`lrkit.finder.find_lr` on a fresh build of this task (``options`` are passed on)."""
        from lrkit.finder import find_lr

        parts = self.build(seed)
        opt = parts.make_optimizer(1e-3)
        options.setdefault("seed", seed)
        return find_lr(parts.model, opt, parts.train_loader, parts.loss_fn, **options)


# --------------------------------------------------------------------------------------------------
# shared pieces
# --------------------------------------------------------------------------------------------------
def _loader(x: NDArray[Any], y: NDArray[Any], batch_size: int, seed: int) -> Any:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    ds = TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
    g = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=True, generator=g, drop_last=False)


def _batches(x: NDArray[Any], y: NDArray[Any], batch_size: int) -> list[Any]:
    import torch

    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    return [(xt[i : i + batch_size], yt[i : i + batch_size]) for i in range(0, len(xt), batch_size)]


def _accuracy(val: list[Any]) -> Callable[[torch.nn.Module], float]:
    def metric(model: torch.nn.Module) -> float:
        right = total = 0
        for x, y in val:
            right += int((model(x).argmax(dim=-1) == y).sum())
            total += len(y)
        return right / total

    return metric


def _cross_entropy() -> Callable[..., torch.Tensor]:
    import torch.nn.functional as F

    return F.cross_entropy


# --------------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _digits() -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    y = y.astype(np.int64)
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return xtr, ytr, xva, yva


def _digits_builder(optimizer: str) -> Callable[[int], TaskParts]:
    def build(seed: int) -> TaskParts:
        import torch
        from torch import nn

        xtr, ytr, xva, yva = _digits()
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
        )

        def make_optimizer(lr: float) -> torch.optim.Optimizer:
            if optimizer == "sgd":
                return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
            return torch.optim.Adam(model.parameters(), lr=lr)

        loader = _loader(xtr, ytr, 32, seed)
        val = _batches(xva, yva, 512)
        return TaskParts(model, make_optimizer, loader, val, _cross_entropy(), _accuracy(val), len(loader))

    return build


# --------------------------------------------------------------------------------------------------
# MNIST-1D
# --------------------------------------------------------------------------------------------------
_TEMPLATES = np.array(
    [
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ],
    dtype=np.float64,
)


def _interpolate(x: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    return np.interp(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, x.size), x)


def _gaussian_smooth(x: NDArray[np.float64], sigma: float) -> NDArray[np.float64]:
    """1-D Gaussian filter with half-sample symmetric edges (``scipy.ndimage.gaussian_filter`` defaults)."""
    radius = int(4.0 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    padded = np.pad(x, radius, mode="symmetric")
    return np.convolve(padded, k, mode="valid")


def make_mnist1d(
    num_samples: int = 5000, seed: int = 42, train_split: float = 0.8
) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]:
    """The MNIST-1D data set (Greydanus & Kobak, 2020, "Scaling down deep learning with MNIST-1D").

    Ten hand-made 12-point templates (one per digit) are whitened, made to start at 0 and scaled by
    1/6; each sample is a template padded with 36-60 zeros, stretched to 72 points, scaled by
    ``1 + 0.4 (u - 1/2)``, circularly shifted by up to 47 points, its zero region filled with Gaussian
    noise (std 0.25) smoothed by a Gaussian of width 2, plus iid noise (std 0.02), sheared by
    ``0.75 (u - 1/2)`` times a ramp from -1/2 to 1/2, and resampled to 40 points. Labels cycle 0..9;
    the samples are shuffled and split ``train_split`` / rest. Deterministic given ``seed`` (the paper's
    default is 42). Returns ``(x_train, y_train, x_test, y_test)`` with ``x`` of shape ``(n, 40)``.

    >>> xtr, ytr, xte, yte = make_mnist1d(100, seed=0)
    >>> xtr.shape, xte.shape, sorted(set(ytr.tolist()) | set(yte.tolist())) == list(range(10))
    ((80, 40), (20, 40), True)
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 10:
        raise ValueError(f"num_samples must be an int >= 10, got {num_samples!r}")
    if not 0.0 < train_split < 1.0:
        raise ValueError(f"train_split must be in (0, 1), got {train_split!r}")
    rng = np.random.default_rng(seed)
    t = _TEMPLATES - _TEMPLATES.mean(axis=1, keepdims=True)
    t /= t.std(axis=1, keepdims=True)
    t -= t[:, :1]
    t /= 6.0
    template_len, pad_lo, pad_hi, final_len = 12, 36, 60, 40
    xs = np.empty((num_samples, final_len), dtype=np.float64)
    ys = np.arange(num_samples, dtype=np.int64) % 10
    for i in range(num_samples):
        x = t[ys[i]] + 1e-8
        p = pad_lo + int(rng.random() * (pad_hi - pad_lo + 1))
        x = np.concatenate([x, np.zeros(p)])
        x = _interpolate(x, template_len + pad_hi)
        x = x * (1.0 + 0.4 * (rng.random() - 0.5))
        k = int(rng.integers(48))
        x = np.roll(x, k)
        mask = x != 0
        x = np.where(mask, x, _gaussian_smooth(0.25 * rng.standard_normal(x.size), 2.0))
        x = x + 0.02 * rng.standard_normal(x.size)
        x = x - 0.75 * (rng.random() - 0.5) * np.linspace(-0.5, 0.5, x.size)
        xs[i] = _interpolate(x, final_len)
    order = rng.permutation(num_samples)
    xs32 = xs[order].astype(np.float32)
    ys = ys[order]
    n_train = round(train_split * num_samples)
    return xs32[:n_train], ys[:n_train], xs32[n_train:], ys[n_train:]


@lru_cache(maxsize=1)
def _mnist1d() -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]:
    return make_mnist1d()


def _mnist1d_build(seed: int) -> TaskParts:
    import torch
    from torch import nn

    xtr, ytr, xva, yva = _mnist1d()
    torch.manual_seed(seed)
    width = 32

    def block(c_in: int, kernel: int) -> list[nn.Module]:
        return [nn.Conv1d(c_in, width, kernel, stride=2, padding=1), nn.BatchNorm1d(width), nn.ReLU()]

    # length 40 -> 19 -> 10 -> 5
    model = nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        *block(1, 5),
        *block(width, 3),
        *block(width, 3),
        nn.Flatten(),
        nn.Linear(width * 5, 10),
    )

    def make_optimizer(lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    loader = _loader(xtr, ytr, 64, seed)
    val = _batches(xva, yva, 500)
    return TaskParts(model, make_optimizer, loader, val, _cross_entropy(), _accuracy(val), len(loader))


# --------------------------------------------------------------------------------------------------
# tiny character-level transformer language model
# --------------------------------------------------------------------------------------------------
STDLIB_MODULES = ("textwrap", "heapq", "fractions", "statistics")


@lru_cache(maxsize=4)
def stdlib_text(modules: tuple[str, ...] = STDLIB_MODULES) -> str:
    """The source code of some standard-library modules, read from disk and concatenated.

    The text depends on the Python version (the modules change a little between releases).
    """
    parts = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            raise ValueError(f"modules must name pure-Python stdlib modules, got {name!r}")
        with open(spec.origin, encoding="utf-8") as f:
            parts.append(f.read())
    return "\n".join(parts)


def _encode(text: str) -> NDArray[np.int64]:
    codes = np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8).astype(np.int64)
    return np.minimum(codes, 127)


_CTX = 48


def _tinylm_build(seed: int) -> TaskParts:
    import torch
    from torch import nn

    data = _encode(stdlib_text())
    n_val = data.size // 10
    train, val = data[:-n_val], data[-n_val:]

    def windows(a: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        n = (a.size - 1) // _CTX
        idx = np.arange(n)[:, None] * _CTX + np.arange(_CTX)[None, :]
        return a[idx], a[idx + 1]

    class TinyLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = 64
            self.embed = nn.Embedding(128, d)
            self.pos = nn.Parameter(torch.zeros(1, _CTX, d))
            nn.init.normal_(self.pos, std=0.02)
            layer = nn.TransformerEncoderLayer(
                d, 4, dim_feedforward=4 * d, dropout=0.0, batch_first=True, norm_first=True
            )
            self.blocks = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, 128)
            self.register_buffer(
                "mask", nn.Transformer.generate_square_subsequent_mask(_CTX), persistent=False
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = x.shape[1]
            h = self.embed(x) + self.pos[:, :n]
            mask = self.get_buffer("mask")
            h = self.blocks(h, mask=mask[:n, :n], is_causal=True)
            return self.head(self.norm(h))  # type: ignore[no-any-return]

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))

    torch.manual_seed(seed)
    model = TinyLM()

    def make_optimizer(lr: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)

    xtr, ytr = windows(train)
    xva, yva = windows(val)
    loader = _loader(xtr, ytr, 32, seed)
    val_batches = _batches(xva, yva, 128)

    def metric(m: torch.nn.Module) -> float:
        total = count = 0.0
        for x, y in val_batches:
            total += float(loss_fn(m(x), y)) * len(y)
            count += len(y)
        return math.exp(-total / count)

    return TaskParts(model, make_optimizer, loader, val_batches, loss_fn, metric, len(loader))


# --------------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------------
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "digits-mlp-sgd",
            "scikit-learn digits, MLP 64-128-128-10, SGD momentum 0.9, batch 32",
            "SGD(momentum=0.9)",
            "accuracy",
            10,
            32,
            _digits_builder("sgd"),
        ),
        Task(
            "digits-mlp-adam",
            "scikit-learn digits, MLP 64-128-128-10, Adam, batch 32",
            "Adam",
            "accuracy",
            10,
            32,
            _digits_builder("adam"),
        ),
        Task(
            "mnist1d-cnn",
            "MNIST-1D (4000 train / 1000 val), 3-layer 1-D CNN with BatchNorm, SGD momentum 0.9, batch 64",
            "SGD(momentum=0.9)",
            "accuracy",
            15,
            64,
            _mnist1d_build,
        ),
        Task(
            "tinylm-transformer",
            "character LM on stdlib source, 2-layer causal transformer d=64, AdamW, batch 32",
            "AdamW(weight_decay=0.01)",
            "exp(-val cross-entropy)",
            4,
            32,
            _tinylm_build,
        ),
    )
}


def get_task(name: str) -> Task:
    """The built-in task called ``name``; a ValueError lists the known names."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"task must be one of {', '.join(sorted(TASKS))}, got {name!r}") from None
