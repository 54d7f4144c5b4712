"""The PyTorch baseline: a sweep written the way a PyTorch user would write it.

A loop over configurations; for each, a model with the paper's initialization (weights
``N(0, σ_w²/fan_in)``, biases ``N(0, σ_b²)``, i.e. zero at σ_b = 0), the paper's loss
``−1/(2k|B|) Σ y·log p`` (SPEC §1), ``torch.optim.SGD(lr=η, momentum=μ, weight_decay=λ)``,
full-batch or minibatch training as the config says (a fresh ``torch.randperm`` per epoch,
whole epochs), the test set evaluated after every epoch, and every run trained to its full
budget. ``t*`` is the first epoch of maximal test accuracy.

``weight_decay=λ`` is our coupled ``(λ/2)‖θ‖²``: SGD adds ``λθ`` to the gradient before its
momentum buffer, which is the gradient of ``(λ/2)‖θ‖²``; :func:`check_weight_decay` verifies
it numerically. Units: η per step, λ the coefficient of ``(λ/2)‖θ‖²``, budgets in epochs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from l2dynamics.config import TrainConfig, budget_epochs
from l2dynamics.data import Dataset

SQRT2 = math.sqrt(2.0)


def init_layer(layer: nn.Linear | nn.Conv2d, sigma_w: float, sigma_b: float) -> None:
    """``W ~ N(0, σ_w²/fan_in)`` (fan_in: in_features or k²·C_in), ``b ~ N(0, σ_b²)``."""
    fan_in = layer.weight[0].numel()
    with torch.no_grad():
        layer.weight.normal_(0.0, sigma_w / math.sqrt(fan_in))
        if layer.bias is not None and sigma_b > 0:
            layer.bias.normal_(0.0, sigma_b)
        elif layer.bias is not None:
            layer.bias.zero_()


def fc(
    in_dim: int,
    k: int,
    depth: int = 3,
    width: int = 2048,
    sigma_w: float = SQRT2,
    sigma_b: float = 0.0,
) -> nn.Sequential:
    """Flatten → depth × (Linear(width) → ReLU) → Linear(k), as :class:`l2dynamics.models.FC`."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(depth):
        layers += [nn.Linear(in_dim if i == 0 else width, width), nn.ReLU()]
    layers.append(nn.Linear(width, k))
    for m in layers:
        if isinstance(m, nn.Linear):
            init_layer(m, sigma_w, sigma_b)
    return nn.Sequential(*layers)


def cnn(
    in_ch: int,
    side: int,
    k: int,
    channels: int = 300,
    dense: int = 500,
    pool_window: int = 2,
    pool_stride: int = 2,
    sigma_w: float = SQRT2,
    sigma_b: float = 0.0,
    batch_norm: bool = False,
) -> nn.Sequential:
    """The paper's CNN as :class:`l2dynamics.models.CNN` lists it (NCHW input ``(B, C, H, W)``):
    no activation after the fourth conv nor after the hidden Dense layer."""

    def act() -> list[nn.Module]:
        norm = [nn.BatchNorm2d(channels, track_running_stats=False)] if batch_norm else []
        return [*norm, nn.ReLU()]

    conv = [nn.Conv2d(in_ch, channels, 3, padding=1)] + [
        nn.Conv2d(channels, channels, 3, padding=p) for p in (0, 1, 0)
    ]
    pool = nn.MaxPool2d(pool_window, pool_stride)
    out = ((side - 2 - pool_window) // pool_stride + 1 - 2 - pool_window) // pool_stride + 1
    layers = [
        conv[0],
        *act(),
        conv[1],
        *act(),
        pool,
        conv[2],
        *act(),
        conv[3],
        pool,
        nn.Flatten(),
        nn.Linear(channels * out * out, dense),
        nn.Linear(dense, k),
    ]
    for m in layers:
        if isinstance(m, nn.Linear | nn.Conv2d):
            init_layer(m, sigma_w, sigma_b)
    return nn.Sequential(*layers)


class WRNBlock(nn.Module):
    """Pre-activation block BN → ReLU → conv3×3(stride) → BN → ReLU → conv3×3, plus the
    identity or a 1×1 conv of the first pre-activation (as :class:`l2dynamics.models.WRNBlock`)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.norm_0 = nn.BatchNorm2d(c_in, track_running_stats=False)
        self.conv_0 = nn.Conv2d(c_in, c_out, 3, stride, padding=1)
        self.norm_1 = nn.BatchNorm2d(c_out, track_running_stats=False)
        self.conv_1 = nn.Conv2d(c_out, c_out, 3, 1, padding=1)
        reshape = c_in != c_out or stride != 1
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride) if reshape else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.relu(self.norm_0(x))
        h = self.conv_1(torch.relu(self.norm_1(self.conv_0(pre))))
        return h + (x if self.shortcut is None else self.shortcut(pre))


def wrn(
    in_ch: int, k: int, depth: int = 28, width: int = 10, sigma_w: float = 1.0, sigma_b: float = 0.0
) -> nn.Sequential:
    """WRN-depth-width as :class:`l2dynamics.models.WideResNet` (batch-statistics BN)."""
    n = (depth - 4) // 6
    layers: list[nn.Module] = [nn.Conv2d(in_ch, 16, 3, padding=1)]
    c_in = 16
    for base, stride in zip((16, 32, 64), (1, 2, 2), strict=True):
        for b in range(n):
            layers.append(WRNBlock(c_in, base * width, stride if b == 0 else 1))
            c_in = base * width
    layers += [
        nn.BatchNorm2d(c_in, track_running_stats=False),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c_in, k),
    ]
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            init_layer(m, sigma_w, sigma_b)
    return model


def build(name: str, options: Mapping[str, Any], shape: tuple[int, int, int], k: int) -> nn.Module:
    """The torch twin of the toolkit's model ``name`` for images of ``shape`` (H, W, C)."""
    opts = dict(options)
    for key, default in (("activation", "relu"), ("use_bias", True)):
        if opts.pop(key, default) != default:
            raise ValueError(f"torch baseline: {key} must be {default!r}")
    h, w, c = shape
    if name == "fc":
        return fc(h * w * c, k, **opts)
    if name == "cnn":
        return cnn(c, h, k, **opts)
    if name == "wrn":
        return wrn(c, k, **opts)
    raise ValueError(f"torch baseline: unknown model {name!r}")


def normalized_xent(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``−1/(2k|B|) Σ_B Σ_i y_i log softmax(f)_i`` for ``(B, k)`` logits and one-hot targets."""
    batch, k = logits.shape
    return -(targets * torch.log_softmax(logits, dim=1)).sum() / (2.0 * k * batch)


def check_weight_decay(lam: float = 0.01, eta: float = 0.5, momentum: float = 0.9) -> float:
    """Max |Δθ| after 3 steps between ``SGD(weight_decay=λ)`` on the bare loss and
    ``SGD(weight_decay=0)`` on the loss plus ``(λ/2)‖θ‖²`` (≈ 1e-7 means equal conventions)."""
    torch.manual_seed(0)
    x, y = torch.randn(16, 5), torch.eye(3)[torch.randint(0, 3, (16,))]
    models = [fc(5, 3, depth=1, width=7) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [
        torch.optim.SGD(models[0].parameters(), eta, momentum, weight_decay=lam),
        torch.optim.SGD(models[1].parameters(), eta, momentum),
    ]
    for _ in range(3):
        for i, (m, opt) in enumerate(zip(models, opts, strict=True)):
            opt.zero_grad()
            penalty = 0.5 * lam * sum((p * p).sum() for p in m.parameters()) if i else 0.0
            (normalized_xent(m(x), y) + penalty).backward()
            opt.step()
    pairs = zip(models[0].parameters(), models[1].parameters(), strict=True)
    return max(float((a - b).abs().max()) for a, b in pairs)


@dataclasses.dataclass
class Tensors:
    """A data set as torch tensors: images (NCHW, or flat for FC), one-hot train targets,
    integer test labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def tensors(ds: Dataset, model: str) -> Tensors:
    """Torch tensors of ``ds``; FC gets the NHWC images flattened as the toolkit flattens them."""

    def images(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return t.reshape(len(x), -1) if model == "fc" else t.permute(0, 3, 1, 2).contiguous()

    y = torch.from_numpy(ds.y_train.astype(np.int64))
    onehot = torch.nn.functional.one_hot(y, ds.num_classes).float()
    return Tensors(
        images(ds.x_train), onehot, images(ds.x_test), torch.from_numpy(ds.y_test.astype(np.int64))
    )


def copy_fc_params(model: nn.Sequential, params: Mapping[str, Any]) -> None:
    """Load a toolkit FC's flax parameters (``dense_i``/``readout``, kernel ``(in, out)``)
    into the torch FC, so that both start from the same point."""
    names = sorted(k for k in params if k.startswith("dense_")) + ["readout"]
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for name, lin in zip(names, linears, strict=True):
            lin.weight.copy_(torch.from_numpy(np.array(params[name]["kernel"]).T.copy()))
            lin.bias.copy_(torch.from_numpy(np.array(params[name]["bias"])))


@dataclasses.dataclass
class TorchResult:
    """One baseline run: best test accuracy (fraction), t* (epochs, first maximum), epochs
    trained, status (``done``/``diverged``), wall time (s) and test accuracy per epoch."""

    best_test_acc: float
    t_star_epochs: float
    epochs: int
    status: str
    wall_s: float
    test_acc: np.ndarray


def test_accuracy(model: nn.Module, data: Tensors, batch: int) -> float:
    """Test accuracy (fraction) in chunks of at most ``batch`` examples."""
    model.eval()
    with torch.no_grad():
        hits = sum(
            int((model(xs).argmax(1) == ys).sum())
            for xs, ys in zip(data.x_test.split(batch), data.y_test.split(batch), strict=True)
        )
    model.train()
    return hits / len(data.y_test)


def train(cfg: TrainConfig, ds: Dataset, data: Tensors, *, init: Any = None) -> TorchResult:
    """Train ``cfg`` for its full budget (``ceil(budget)`` whole epochs), testing every epoch.

    Args:
        cfg: the run (η, λ, momentum, batch size, budget, seed, model).
        ds: its data set (shapes, class count); data: the same as torch tensors.
        init: optional toolkit FC parameters to start from (else torch's own init, seeded
            with ``cfg.seed``).
    """
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = build(cfg.model.name, cfg.model.options, ds.input_shape, ds.num_classes)
    if init is not None:
        copy_fc_params(model, init)
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.eta, momentum=cfg.momentum, weight_decay=cfg.lam
    )
    n, batch = ds.n_train, min(cfg.batch_size or ds.n_train, ds.n_train)
    eval_batch = min(cfg.eval_batch_size, ds.n_test)
    accs: list[float] = []
    status = "done"
    for _ in range(math.ceil(round(budget_epochs(cfg), 9))):
        order = torch.randperm(n) if batch < n else None
        for i in range(0, n, batch):
            idx = None if order is None else order[i : i + batch]
            x = data.x_train if idx is None else data.x_train[idx]
            y = data.y_train if idx is None else data.y_train[idx]
            opt.zero_grad(set_to_none=True)
            loss = normalized_xent(model(x), y)
            loss.backward()
            opt.step()
        if not math.isfinite(loss.item()):
            status = "diverged"
            break
        accs.append(test_accuracy(model, data, eval_batch))
    acc = np.asarray(accs)
    best = int(np.argmax(acc)) if len(acc) else 0
    return TorchResult(
        best_test_acc=float(acc[best]) if len(acc) else float("nan"),
        t_star_epochs=float(best + 1),
        epochs=len(acc),
        status=status,
        wall_s=time.perf_counter() - start,
        test_acc=acc,
    )
