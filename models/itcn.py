"""Cyclic-permutation invariant classifiers of folded windows (Zhang & Bloom 2020).

Three siblings share one layout (padding → residual block → stack → k=1 head):
- ``itcn``:    dilated residual convolutions with *symmetry* (circular) padding. A cyclic shift of the input
               shifts every feature map by the same amount, and the per-phase logits are mean-pooled, so the
               class is exactly invariant to the phase the fold started at.
- ``tcn``:     the same network with (causal) zero padding: the paper's baseline, not invariant.
- ``iresnet``: circular padding without dilation, max-pooling (÷2) after each block: semi-invariant
               (exact only for shifts that are multiples of 2^depth).

Tensors are (batch, channels, length). The network reads the (Δphase, mag) channels of `Windows.x` (σ is
not used, as in the paper) and the auxiliary inputs (mean mag, std mag, log10 P), which join at the head
after a standardisation whose constants live in the state dict (buffers), so a bundle carries them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

ARCHS = ("itcn", "tcn", "iresnet")
# Channels of `Windows.x` the convolutional classifiers read: (Δphase, standardised mag).
INPUT_CHANNELS = (0, 1)
N_AUX = 3


def receptive_field(kernel: int, depth: int) -> int:
    """Receptive field (steps) of a stack of `depth` residual blocks, two convolutions each, dilation 2^i.

    Equals (K−1)(2^(D+1)−2); the paper asks for ≥ L so every per-phase prediction sees the whole window.
    """
    return (kernel - 1) * (2 ** (depth + 1) - 2)


class SymmetryPad1d(nn.Module):
    """Circular padding of `pad` steps on the left of (batch, channels, length).

    `F.pad(mode="circular")` (fast) refuses padding longer than the input, and short windows (50 steps)
    meet dilations of 64 and more: there an index gather wraps as many times as needed.
    """

    any_length = False  # set while `models.onnx_export` traces its dynamic-length graph (tile + slice)

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        if self.pad == 0:
            return x
        if SymmetryPad1d.any_length:  # one branch for every length: an ONNX graph with a dynamic length
            return x.repeat(1, 1, self.pad // length + 2)[..., -(self.pad + length) :]
        if self.pad <= length:
            return nn.functional.pad(x, (self.pad, 0), mode="circular")
        index = torch.arange(-self.pad, length, device=x.device) % length
        return x.index_select(-1, index)


class ZeroPad1d(nn.Module):
    """Causal zero padding of `pad` steps on the left: the TCN baseline."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.pad(x, (self.pad, 0)) if self.pad else x


class ResidualBlock(nn.Module):
    """Two padded, weight-normalised dilated convolutions with ReLU and dropout, plus a skip connection.

    (batch, c_in, length) → (batch, c_out, length): left padding of (kernel−1)·dilation keeps the length.
    """

    def __init__(
        self, c_in: int, c_out: int, kernel: int, dilation: int, circular: bool, dropout: float
    ) -> None:
        super().__init__()
        pad_cls = SymmetryPad1d if circular else ZeroPad1d
        pad = (kernel - 1) * dilation
        self.net = nn.Sequential(
            pad_cls(pad),
            weight_norm(nn.Conv1d(c_in, c_out, kernel, dilation=dilation)),
            nn.ReLU(),
            nn.Dropout(dropout),
            pad_cls(pad),
            weight_norm(nn.Conv1d(c_out, c_out, kernel, dilation=dilation)),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.net(x) + self.skip(x))


class PhaseClassifier(nn.Module):
    """Residual stack + k=1 head predicting logits at every phase, mean-pooled over the phases.

    forward(x: (batch, 2, length) float32, aux: (batch, 3) float32 raw [mean mag, std mag, log10 P])
      → logits (batch, n_classes).
    """

    def __init__(
        self,
        arch: str,
        n_classes: int,
        hidden: int,
        depth: int,
        kernel: int,
        dropout: float,
    ) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS}")
        self.arch = arch
        blocks: list[nn.Module] = []
        for i in range(depth):
            c_in = len(INPUT_CHANNELS) if i == 0 else hidden
            if arch == "iresnet":
                blocks += [
                    ResidualBlock(c_in, hidden, kernel, 1, circular=True, dropout=dropout),
                    nn.MaxPool1d(2, ceil_mode=True),
                ]
            else:
                blocks.append(ResidualBlock(c_in, hidden, kernel, 2**i, arch == "itcn", dropout))
        self.stack = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Conv1d(hidden + N_AUX, hidden, 1),
            nn.ReLU(),
            nn.Conv1d(hidden, n_classes, 1),
        )
        # Standardisation of the auxiliary inputs, fitted on the training windows (see `set_aux_scaling`).
        self.register_buffer("aux_mean", torch.zeros(N_AUX))
        self.register_buffer("aux_std", torch.ones(N_AUX))

    @property
    def n_classes(self) -> int:
        return self.head[-1].out_channels

    def set_aux_scaling(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.aux_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.aux_std.copy_(torch.clamp(torch.as_tensor(std, dtype=torch.float32), min=1e-6))

    def phase_features(self, x: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """The head's hidden layer at every phase (batch, hidden, length'): the penultimate features."""
        features = self.stack(x)
        aux_scaled = (aux - self.aux_mean) / self.aux_std
        aux_map = aux_scaled.unsqueeze(-1).expand(-1, -1, features.shape[-1])
        return self.head[:-1](torch.cat([features, aux_map], dim=1))

    def phase_logits(self, x: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """Logits for every phase (batch, n_classes, length') before pooling."""
        return self.head[-1](self.phase_features(x, aux))

    def forward(self, x: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        return self.phase_logits(x, aux).mean(dim=-1)

    def embed(self, x: torch.Tensor, aux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedding (batch, hidden), logits (batch, n_classes)) from one pass.

        The embedding is the penultimate features mean-pooled over the phases, so it is as invariant to
        the fold's initial phase as the logits (which are a linear map of it); the novelty head's input.
        """
        features = self.phase_features(x, aux)
        return features.mean(dim=-1), self.head[-1](features).mean(dim=-1)


# Defaults inside the paper's ranges (depth 6–7, hidden 12–48, kernel 2–5): receptive field
# (3−1)(2^7−2) = 252 ≥ L = 200; hidden 32 keeps a CPU epoch on CRTS to tens of seconds. No dropout:
# on CPU its random masks took half of each training step; augmentation and early stopping regularise.
DEFAULT_HYPERPARAMETERS = {"hidden": 32, "depth": 6, "kernel": 3, "dropout": 0.0}


def build_classifier(
    arch: str,
    n_classes: int,
    hidden: int = DEFAULT_HYPERPARAMETERS["hidden"],
    depth: int = DEFAULT_HYPERPARAMETERS["depth"],
    kernel: int = DEFAULT_HYPERPARAMETERS["kernel"],
    dropout: float = DEFAULT_HYPERPARAMETERS["dropout"],
) -> PhaseClassifier:
    """Build an iTCN / TCN / iResNet for `n_classes` classes; see the module docstring for the differences."""
    if n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
    return PhaseClassifier(arch, n_classes, hidden=hidden, depth=depth, kernel=kernel, dropout=dropout)


def window_tensors(x, aux, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(n, length, 3) numpy windows (already cut to their true length) → ((n, 2, length), (n, 3)) tensors."""
    xt = torch.as_tensor(x[:, :, list(INPUT_CHANNELS)], dtype=torch.float32, device=device)
    return xt.transpose(1, 2).contiguous(), torch.as_tensor(aux, dtype=torch.float32, device=device)


# What this implementation does differently from Zhang & Bloom (2020); copied into bundle metadata.
PAPER_CHANGES = [
    "windows come from the plugin's own Lomb-Scargle period (broker.period), not a catalogue period",
    "windows shorter than L=200 (buckets 50/100/150) for young objects; training shortens windows at random "
    "(random subsets of a bucket's size, re-standardised) and batches one length at a time",
    "the k=1 head is two 1x1 convolutions (hidden+3 -> hidden -> K) with the standardised aux inputs "
    "concatenated at every phase",
    "cross entropy weighted per class (sqrt of inverse window frequency by default) against CRTS's imbalance",
    "early stopping on object-level validation accuracy; gradient norm clipped at 1",
    "no dropout in the residual blocks by default (on CPU its masks cost half of each training step)",
    "TCN baseline uses causal zero padding; iResNet = circular-padded undilated blocks + max-pool /2 each",
]
