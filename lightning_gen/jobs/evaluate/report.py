"""The evaluate job's report: the package versions it records and the table it prints."""

from __future__ import annotations

import importlib
import platform

from lightning_gen.jobs.evaluate.protocol import NOT_COMPARABLE


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("lightning_gen", "torch", "torchvision", "pytorch_lightning", "torchmetrics", "torch_fidelity"):
        try:
            out[name] = importlib.import_module(name).__version__
        except (ImportError, AttributeError):
            out[name] = "not installed" if name != "lightning_gen" else _own_version()
    for name in ("numpy", "scipy", "sklearn"):
        out[name] = importlib.import_module(name).__version__
    return out


def _own_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lightning-gen")
    except PackageNotFoundError:
        return "unknown"


def _spread(entry: dict) -> tuple[str, str]:
    """The table's ``± std`` cell and the number of runs behind it: no spread for a single run (``n=1``)."""
    runs = entry.get("repeats")
    if runs == 1:
        return "", "n=1 (no spread)"
    std = f"{entry['std']:.4g}" if entry.get("std") is not None else ""
    return std, (f"n={runs}" if runs else "")


def class_note(name: str, entry: dict) -> str:
    """The note of a class score (issue 14): how many samples, and for per-class FID the unstable classes."""
    if name == "class_fid":
        fake, real = zip(*entry["samples_per_class"].values(), strict=True)
        note = f"mean of {len(entry['per_class'])} classes; per class {min(fake)}-{max(fake)} generated, "
        note += f"{min(real)}-{max(real)} real"
        unstable = entry.get("unstable") or []
        if unstable:
            which = "all classes" if len(unstable) == len(entry["per_class"]) else f"classes {unstable}"
            note += f"; UNSTABLE in {which} (fewer samples than {entry['feature_dim']} feature dimensions)"
        return note
    note = f"n={entry['n']:,}, std over {entry['splits']} splits" if "std" in entry else f"n={entry['n']:,}"
    if "reference_value" in entry:
        note = f"real held-out {entry['reference_value']:.4g}; " + note
    return note


def table_row(name: str, entry: dict) -> tuple[str, str, str, str]:
    """One table row: metric, value (``*`` when not comparable with published scores), ± std, note."""
    mark = " *" if entry.get("not_comparable") else ""
    if name in ("class_accuracy", "class_fid"):
        std = f"{entry['std']:.4g}" if entry.get("std") is not None else ""
        return name, f"{entry['value']:.6g}", std, class_note(name, entry)
    if name == "precision_recall":
        return name, f"P {entry['precision']:.4f}  R {entry['recall']:.4f}{mark}", "", f"k={entry['k']}"
    std, runs = _spread(entry)
    shown = ("value", "std", "reference_value", "reference_std", "repeats", "comparable_with_published")
    extras = {k: v for k, v in entry.items() if k not in (*shown, "not_comparable")}
    notes = [f"reference {entry['reference_value']:.4g}"] if "reference_value" in entry else []
    notes += [runs] if runs else []
    if extras and "reference_value" not in entry:
        notes.append(", ".join(f"{k}={v}" for k, v in extras.items()))
    return name, f"{entry['value']:.6g}{mark}", std, "; ".join(notes)


def _class_lines(report: dict) -> list[str]:
    """Per-class values of the class scores, and the generated labels, for conditional samples."""
    lines = []
    for name in ("class_accuracy", "class_fid"):
        entry = report["metrics"].get(name)
        if entry and entry.get("per_class"):
            cells = "  ".join(f"{c}: {v:.3g}" for c, v in entry["per_class"].items())
            lines.append(f"{name} per class: {cells}")
    cond = report.get("conditional")
    if cond:
        lines.append(f"generated labels: {cond['num_classes']} classes, per class {cond['samples_per_class']}")
        if cond.get("note"):
            lines.append(f"note: {cond['note']}")
    return lines


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    extractor = report.get("feature_extractor") or {}
    table = Table(title=f"lightning-gen evaluate: {report['source']['path']}")
    for column in ("metric", "value", "± std", "reference / note"):
        table.add_column(column)
    for name, entry in report["metrics"].items():
        table.add_row(*table_row(name, entry))
    console = Console()
    console.print(table)
    lines = [
        f"dataset {report['dataset']['class_path']} split={report['split']}  real n={report['num_real']}  "
        f"generated n={report['num_generated']}  seed={report['seed']}"
    ]
    if extractor:
        lines.append(
            f"features {extractor['name']} (sha256 {extractor['weights_sha256'][:16]}...)  {extractor['note']}"
        )
        lines.append(f"resize: {extractor['resize_rule']}")
    if "scaling" in report:
        lines.append(f"scaling: {report['scaling']}")
        share = report["out_of_range_share"]
        lines.append(f"generated values outside the real range: {share:.2%} (scored as they are)")
    lines += _class_lines(report)
    reasons = report.get("not_comparable_reasons") or []
    if reasons:
        lines.append(f"* {NOT_COMPARABLE.upper()}: " + "; ".join(reasons) + ".")
    elif report.get("comparable_with_published"):
        lines.append("settings of the published protocol (compare only on the same dataset and split)")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)
