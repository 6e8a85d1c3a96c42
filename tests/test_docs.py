"""The front page and the docs pages link only to files that exist, and every docs page is in the site's nav."""

import os
import re

import yaml

from tests.conftest import REPO

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _links(path: str) -> list[str]:
    with open(path) as f:
        return [m for m in LINK.findall(f.read()) if "://" not in m]


def test_readme_links_point_at_files_that_exist():
    missing = [t for t in _links(os.path.join(REPO, "README.md")) if not os.path.exists(os.path.join(REPO, t))]
    assert not missing, f"README.md links to missing files: {missing}"


def test_docs_links_stay_inside_the_site_and_exist():
    docs = os.path.join(REPO, "docs")
    bad = {}
    for name in sorted(os.listdir(docs)):
        if name.endswith(".md"):
            for target in _links(os.path.join(docs, name)):
                resolved = os.path.normpath(os.path.join(docs, target))
                if not resolved.startswith(docs + os.sep) or not os.path.exists(resolved):
                    bad.setdefault(name, []).append(target)
    assert not bad, f"docs pages link outside docs/ or to missing files (the built site would break): {bad}"


def test_every_docs_page_is_in_the_nav():
    with open(os.path.join(REPO, "mkdocs.yml")) as f:
        nav = yaml.safe_load(f)["nav"]
    in_nav = {page for entry in nav for page in entry.values()}
    pages = {n for n in os.listdir(os.path.join(REPO, "docs")) if n.endswith(".md")}
    assert pages == in_nav, f"not in mkdocs.yml's nav: {pages - in_nav}; nav entries without a page: {in_nav - pages}"
