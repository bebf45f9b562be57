"""Export a torch bundle's network to ONNX, next to its weights, for the torch-free serving engine.

Written into the bundle folder (the torch weights stay the source of truth):

    onnx/classifier-L{length}.onnx   iTCN/TCN/iResNet, one file per bucket length and L (the circular
                                     padding's graph depends on the length: the fastest graphs); inputs
                                     x (n, 2, length) float32 and aux (n, 3) float32, outputs embedding
                                     (n, hidden) (the novelty head's input) and logits (n, K) float32
    onnx/classifier.onnx             the same network for any other length (a young object's window of all
                                     its points): the padding exported as tile + slice, one branch for
                                     every length, up to 18% slower than the per-length graphs
    onnx/novelty.onnx                AE-GMM encoder + estimation network, any length; inputs x (n, length, 3)
                                     and aux (n, 3), outputs z (n, D) and logits (n, K)
    onnx/gmm.npz                     the fixed mixture (phi (K,), mu (K, D), cov (K, D, D)), float32: the
                                     energy and its percentiles are computed in numpy at serving time

and metadata.json gains an "onnx" section listing them. Needs torch and onnx (the [train] extra).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from models.bundle import METADATA_FILE, WEIGHTS_FILE, Bundle, build_model, load_bundle
from models.bundle_format import ANY_LENGTH
from models.itcn import SymmetryPad1d
from models.jsonio import json_default
from models.post_hoc_cuts import cut_lengths

ONNX_DIR = "onnx"
OPSET = 17


class _ClassifierGraph(torch.nn.Module):
    """The classifier's embedding and logits (logits last, as the novelty graph's)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, aux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.embed(x, aux)


class _NoveltyGraph(torch.nn.Module):
    """The AE-GMM up to z and the estimation logits; the mixture energy is left to numpy."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, aux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(x, aux)
        return out.z, out.logits


def _plain(bundle: Bundle) -> torch.nn.Module:
    """A fresh eval-mode CPU copy of the bundle's network with weight norm folded into plain weights.

    Rebuilt from the metadata rather than deep-copied: a deep copy shares the parametrised class, and
    removing the parametrisation from the copy would break the original.
    """
    meta = bundle.metadata
    model = build_model(bundle.kind, meta["arch"], len(bundle.class_names), meta["hyperparameters"])
    model.load_state_dict({k: v.detach().cpu() for k, v in bundle.model.state_dict().items()})
    model.eval()
    for module in model.modules():
        if torch.nn.utils.parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                torch.nn.utils.parametrize.remove_parametrizations(module, name)
    return model


def _export(graph: torch.nn.Module, args: tuple, path: Path, outputs: list[str], dynamic: dict) -> None:
    # The tracer warns about shape arithmetic it records (the circular padding's tile count, a function of
    # the dynamic length: the parity tests check other lengths) and that a GRU with a batch > 1 may not
    # generalise (the parity test checks other batches).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated
        warnings.filterwarnings("ignore", message=".*GRU.*", category=UserWarning)
        _export_traced(graph, args, path, outputs, dynamic)


def _export_traced(graph, args: tuple, path: Path, outputs: list[str], dynamic: dict) -> None:
    torch.onnx.export(
        graph,
        args,
        str(path),
        input_names=["x", "aux"],
        output_names=outputs,
        dynamic_axes=dynamic,
        opset_version=OPSET,
        dynamo=False,  # the TorchScript exporter: no onnxscript needed, and GRUs export as ONNX GRU ops
        do_constant_folding=True,
    )


def export_onnx(bundle: Bundle, path: str | Path) -> dict:
    """Write the ONNX files of `bundle` into the bundle folder `path`; return the metadata "onnx" section."""
    path = Path(path)
    out_dir = path / ONNX_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    model = _plain(bundle)
    window = bundle.window
    length = int(window.get("length", 200))
    aux = torch.zeros(2, 3)
    files: dict = {}
    lengths = cut_lengths(window)
    with torch.no_grad():
        if bundle.kind == "classifier":
            graph = _ClassifierGraph(model).eval()
            files["classifier"] = {}
            outputs = ["embedding", "logits"]
            fixed = {"x": {0: "n"}, "aux": {0: "n"}, "embedding": {0: "n"}, "logits": {0: "n"}}
            for n in lengths:
                name = f"{ONNX_DIR}/classifier-L{n}.onnx"
                _export(graph, (torch.zeros(2, 2, n), aux), path / name, outputs, fixed)
                files["classifier"][str(n)] = name
            name = f"{ONNX_DIR}/classifier.onnx"
            SymmetryPad1d.any_length = True
            try:
                dynamic = {**fixed, "x": {0: "n", 2: "length"}}
                _export(graph, (torch.zeros(2, 2, length), aux), path / name, outputs, dynamic)
            finally:
                SymmetryPad1d.any_length = False
            files["classifier"][ANY_LENGTH] = name
        else:
            graph = _NoveltyGraph(model).eval()
            x = torch.zeros(2, length, 3)
            x[:, :, 1] = torch.linspace(-1, 1, length)
            dynamic = {"x": {0: "n", 1: "length"}, "aux": {0: "n"}, "z": {0: "n"}, "logits": {0: "n"}}
            files["novelty"] = f"{ONNX_DIR}/novelty.onnx"
            _export(graph, (x, aux), path / files["novelty"], ["z", "logits"], dynamic)
            files["gmm"] = f"{ONNX_DIR}/gmm.npz"
            np.savez(
                path / files["gmm"],
                phi=model.gmm_phi.numpy(),
                mu=model.gmm_mu.numpy(),
                cov=model.gmm_cov.numpy(),
            )
    weights = path / WEIGHTS_FILE
    section = {
        "opset": OPSET,
        "lengths": lengths,
        "files": files,
        "exported_with_torch": torch.__version__,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else None,
    }
    meta_file = path / METADATA_FILE
    document = json.loads(meta_file.read_text())
    document["onnx"] = section
    meta_file.write_text(json.dumps(document, indent=1, default=json_default) + "\n")
    return section


def export_bundle_folder(path: str | Path) -> dict:
    """Load a saved bundle folder and (re)write its ONNX export in place."""
    return export_onnx(load_bundle(path), path)
