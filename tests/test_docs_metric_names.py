"""The docs' "Metric names" section (docs/cli.md) names every metric the package logs under a literal name: a
metric added in code without a line there fails."""

from __future__ import annotations

import glob
import os
import re

from tests.conftest import REPO

LITERAL = re.compile(r"""["'](train|val|test)/([A-Za-z0-9_()]+)["']""")  # "train/d_loss", "val/fid"
PREFIXED = re.compile(r"""f["']\{prefix\}/([A-Za-z0-9_()]+)["']""")  # f"{prefix}/recon": val/ and test/


DYNAMIC = re.compile(r"""f["'](train|val|test)/\{""")  # f"train/{k}": names built from a loop's keys
#: the names each file builds (a file that starts building names must be listed here, with them)
BUILT = {
    "lightning_gen/models/lstm_gan.py": ["train/feature_matching", "train/moment_matching", "train/supervised"],
    "lightning_gen/models/vae_gan.py": ["train/kl", "train/feature_recon", "train/recon", "train/e_loss"],
}


def logged_names() -> dict[str, str]:
    """Every metric name written out in the package's source -> the file that logs it."""
    names = {}
    for path in glob.glob(os.path.join(REPO, "lightning_gen", "**", "*.py"), recursive=True):
        with open(path) as f:
            source = f.read()
        where = os.path.relpath(path, REPO)
        for split, name in LITERAL.findall(source):
            names[f"{split}/{name}"] = where
        for name in PREFIXED.findall(source):
            names[f"val/{name}"] = where
        if DYNAMIC.search(source):
            assert where in BUILT, f"{where} builds metric names (f'train/{{...}}'): list them in BUILT"
            names.update(dict.fromkeys(BUILT[where], where))
    return names


def metric_names_section() -> str:
    with open(os.path.join(REPO, "docs", "cli.md")) as f:
        page = f.read()
    start = page.index("## Metric names")
    end = page.find("\n## ", start + 1)
    return page[start : end if end > 0 else len(page)]


def test_every_logged_metric_name_is_in_the_readme_section():
    section = metric_names_section()
    names = logged_names()
    assert {"train/d_class_loss", "val/class_accuracy", "val/fid", "train/supervised"} <= set(names)
    # a name is documented in full (`train/d_class_loss`) or, for the family extras, by its last part (`moment_gap`)
    missing = {
        n: where for n, where in names.items() if f"`{n}`" not in section and f"`{n.split('/', 1)[1]}`" not in section
    }
    assert not missing, f"metric names logged but not in docs/cli.md's 'Metric names' section: {missing}"
