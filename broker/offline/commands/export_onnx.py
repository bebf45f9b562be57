"""Write (or refresh) the ONNX export of model bundles, in place, next to their torch weights.

The plugin serves bundles through ONNX Runtime (`[inference] engine`); `varstream train` writes the export
of a new bundle, and this command upgrades bundles trained before it existed. With no --bundle, the
shipped bundles (crts-itcn-supcon, crts-itcn, crts-aegmm) are exported. Needs the [train] extra (torch, onnx).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bundle",
        action="append",
        metavar="DIR",
        help="bundle folder to export (repeat for several; default: the three shipped model bundles)",
    )


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from broker.errors import BundleError
    from models.bundle import (
        AEGMM_BUNDLE,
        DEFAULT_CLASSIFIER_BUNDLE,
        DEFAULT_NOVELTY_BUNDLE,
        BundleFormatError,
    )
    from models.onnx_export import export_bundle_folder

    shipped = (DEFAULT_CLASSIFIER_BUNDLE, DEFAULT_NOVELTY_BUNDLE, AEGMM_BUNDLE)
    folders = [Path(b) for b in args.bundle or shipped]
    for folder in folders:
        try:
            section = export_bundle_folder(folder)
        except BundleFormatError as err:
            raise BundleError(str(err)) from err
        files = section["files"]
        names = list(files.get("classifier", {}).values()) or [files["novelty"], files["gmm"]]
        print(f"{folder}: {', '.join(names)}")
    return 0
