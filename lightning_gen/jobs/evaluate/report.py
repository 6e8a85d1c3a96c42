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
    """The note of a class score: how many samples, and for per-class FID the unstable classes."""
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


def _real_note(entry: dict) -> str:
    """The real data's own numbers on the same protocol (and the samples' at that count), for the note."""
    real = entry.get("real")
    if not real:
        return ""
    own = ", ".join(f"{k} {v:.4g}" for k, v in real.items() if k not in ("n", "items"))
    note = f"real data {own} (n={real['n']:,})"
    matched = entry.get("matched")
    if matched:
        note += "; samples at that n " + ", ".join(f"{k} {v:.4g}" for k, v in matched.items() if k != "n")
    return note


def _special_row(name: str, entry: dict, mark: str) -> tuple[str, str, str, str] | None:
    """The rows of scores that are not one value: two-part metrics, class scores, the copying test."""
    if "not_computed" in entry:
        return name, "not computed", "", entry["not_computed"]
    if name in ("class_accuracy", "class_fid"):
        std = f"{entry['std']:.4g}" if entry.get("std") is not None else ""
        note = "; ".join(n for n in (class_note(name, entry), _real_note(entry)) if n)
        return name, f"{entry['value']:.6g}", std, note
    if name in ("class_recall", "class_diversity"):
        note = f"mean of {len(entry['per_class'])} classes" + ("; 1.0 = as varied as the data" if "div" in name else "")
        return name, f"{entry['value']:.4g}", "", "; ".join(n for n in (note, _real_note(entry)) if n)
    if name == "precision_recall":
        note = "; ".join(n for n in (f"k={entry['k']}", _real_note(entry)) if n)
        return name, f"P {entry['precision']:.4f}  R {entry['recall']:.4f}{mark}", "", note
    if name == "density_coverage":
        note = "; ".join(n for n in (f"k={entry['k']}", _real_note(entry)) if n)
        return name, f"D {entry['density']:.4f}  C {entry['coverage']:.4f}", "", note
    if name == "memorization":
        return name, f"C_T {entry['value']:.3g}" if entry["value"] is not None else "C_T -", "", entry["verdict"]
    return None


def table_row(name: str, entry: dict) -> tuple[str, str, str, str]:
    """One table row: metric, value (``*`` when not comparable with published scores), ± std, note."""
    mark = " *" if entry.get("not_comparable") else ""
    special = _special_row(name, entry, mark)
    if special is not None:
        return special
    std, runs = _spread(entry)
    shown = ("value", "std", "reference_value", "reference_std", "repeats", "comparable_with_published", "points")
    extras = {k: v for k, v in entry.items() if k not in (*shown, "not_comparable", "real", "matched")}
    if entry.get("real"):
        notes = [_real_note(entry)]
    else:
        notes = [f"reference {entry['reference_value']:.4g}"] if "reference_value" in entry else []
    notes += [runs] if runs else []
    if extras and "reference_value" not in entry:
        notes.append(", ".join(f"{k}={v}" for k, v in extras.items()))
    return name, f"{entry['value']:.6g}{mark}", std, "; ".join(notes)


def _class_lines(report: dict) -> list[str]:
    """Per-class values of the class scores, and the generated labels, for conditional samples."""
    lines = []
    for name in ("class_accuracy", "class_fid", "class_recall", "class_diversity"):
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
    if report.get("reference"):
        lines.append(f"reference: {report['reference']['why']}")
    if report.get("real_floor"):
        floor = report["real_floor"]
        lines.append(f"real data's own scores: {floor['n']:,} items of {floor['items']} against the same reference")
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
    lines += [f"! {flag['kind'].upper()}: {flag['message']}" for flag in report.get("flags") or []]
    reasons = report.get("not_comparable_reasons") or []
    if reasons:
        lines.append(f"* {NOT_COMPARABLE.upper()}: " + "; ".join(reasons) + ".")
    elif report.get("comparable_with_published"):
        lines.append("settings of the published protocol (compare only on the same dataset and split)")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)
