"""Deep ensemble of phase classifiers (Lakshminarayanan, Pritzel & Blundell 2017) as one network.

N iTCNs trained alike but from different seeds disagree where the data are thin; averaging them usually
adds accuracy and out-of-distribution separation (their paper). On CRTS it did not (2 members: test
0.818 / 0.778, k-NN AUC 0.892, against 0.824 / 0.801 and 0.895 for the shipped network; README). The wrapper
answers exactly as a single `models.itcn.PhaseClassifier` does, so everything downstream (bundles, the
k-NN novelty head, the temperatures, the ONNX export and ONNX Runtime serving) is unchanged:

    forward(x (batch, 2, length), aux (batch, 3)) → logits (batch, K)
    embed(x, aux) → (embedding (batch, N·hidden), logits (batch, K))

combine: "logits" averages the members' logits (a geometric mean of their probabilities, renormalised);
"proba" returns log of the mean of their probabilities (softmax of it gives that mean exactly).
embedding: "concat-unit" joins each member's embedding scaled to unit length (every member weighs the
same in the novelty head's distances); "concat" joins them as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from models import itcn

ARCH = "ensemble"
COMBINES = ("logits", "proba")
EMBEDDINGS = ("concat-unit", "concat")


class PhaseEnsemble(nn.Module):
    """N `PhaseClassifier`s of one class list; see the module docstring for what forward/embed return."""

    def __init__(
        self, members: Sequence[nn.Module], combine: str = "logits", embedding: str = "concat-unit"
    ) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if combine not in COMBINES:
            raise ValueError(f"unknown combine {combine!r}; expected one of {COMBINES}")
        if embedding not in EMBEDDINGS:
            raise ValueError(f"unknown embedding {embedding!r}; expected one of {EMBEDDINGS}")
        classes = {m.n_classes for m in members}
        if len(classes) != 1:
            raise ValueError(f"members disagree on the number of classes: {sorted(classes)}")
        self.members = nn.ModuleList(members)
        self.combine = combine
        self.embedding = embedding

    @property
    def n_classes(self) -> int:
        return self.members[0].n_classes

    def embed(self, x: torch.Tensor, aux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedding (batch, Σ hidden), logits (batch, K)) from one pass through every member."""
        parts = [member.embed(x, aux) for member in self.members]
        logits = torch.stack([part[1] for part in parts])  # (N, batch, K)
        if self.combine == "logits":
            combined = logits.mean(dim=0)
        else:
            combined = torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=0) - math.log(len(parts))
        embeddings = [part[0] for part in parts]
        if self.embedding == "concat-unit":
            embeddings = [nn.functional.normalize(e, dim=-1) for e in embeddings]
        return torch.cat(embeddings, dim=-1), combined

    def forward(self, x: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        return self.embed(x, aux)[1]


def build_ensemble(
    n_classes: int,
    members: int,
    member_arch: str = "itcn",
    combine: str = "logits",
    embedding: str = "concat-unit",
    seeds: Sequence[int] | None = None,
    **member_hyperparameters,
) -> PhaseEnsemble:
    """An untrained ensemble of `members` identical classifiers (bundle metadata "hyperparameters").

    seeds: the members' training seeds, recorded in the metadata only (not used here).
    """
    if members < 1:
        raise ValueError(f"an ensemble needs at least one member, got {members}")
    if seeds is not None and len(seeds) != members:
        raise ValueError(f"{members} members but {len(seeds)} seeds")
    nets = [itcn.build_classifier(member_arch, n_classes, **member_hyperparameters) for _ in range(members)]
    return PhaseEnsemble(nets, combine=combine, embedding=embedding)


def ensemble_hyperparameters(
    member_hyperparameters: dict,
    seeds: Sequence[int],
    member_arch: str = "itcn",
    combine: str = "logits",
    embedding: str = "concat-unit",
) -> dict:
    """The metadata "hyperparameters" of an ensemble (what `build_ensemble` takes back)."""
    return {
        "members": len(seeds),
        "member_arch": member_arch,
        "combine": combine,
        "embedding": embedding,
        "seeds": [int(s) for s in seeds],
        **member_hyperparameters,
    }


def from_members(
    models: Sequence[nn.Module],
    member_hyperparameters: dict,
    member_arch: str = "itcn",
    combine: str = "logits",
    embedding: str = "concat-unit",
) -> PhaseEnsemble:
    """A PhaseEnsemble holding copies of trained members' weights (the members are left as they are)."""
    ensemble = build_ensemble(
        models[0].n_classes, len(models), member_arch, combine, embedding, **member_hyperparameters
    )
    for net, model in zip(ensemble.members, models, strict=True):
        net.load_state_dict(model.state_dict())
    return ensemble.eval()
