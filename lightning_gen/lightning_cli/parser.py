"""LightningCLI's parser with its errors printed alone: ``error: <message>``, led by the class path at fault."""

from __future__ import annotations

import os
import re
import sys

from pytorch_lightning.cli import LightningArgumentParser

_CLASS_PATH_HINT = (
    "A class path is `module.Class` of an importable module: a module of the folder you run lightning-gen in (e.g. "
    "`mynets.MyGen` from ./mynets.py), an installed package, or one on PYTHONPATH."
)


class ErrorFirstParser(LightningArgumentParser):
    """LightningCLI's parser, whose errors print ``error: <message>`` alone (and a pointer to ``--help``) instead of
    the subcommand's usage block, dozens of lines long, before the message (issue 16). Exit status 2 as before."""

    def error(self, message: str, ex: Exception | None = None):
        debug = os.environ.get("JSONARGPARSE_DEBUG", "").lower() not in ("", "0", "false", "no")
        if not self.exit_on_error or debug:  # jsonargparse raises an ArgumentError there: keep that
            return super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        sys.stderr.write(f"error: {_lead(message)}\n(`{prog} --help` lists every option)\n")
        self.exit(2)


def _lead(message: str) -> str:
    """jsonargparse's message, led by its innermost class-path problem (nested several levels deep in it: a
    network inside the model) in one line, with where class paths come from."""
    if message.strip() == "Unexpected config:":  # jsonargparse's whole message for an empty `--config` file
        return (
            "Unexpected config: a --config file is empty (or not a YAML mapping). A config names at least the "
            "`model:` and `data:` to train, e.g. configs/gan/digits.yaml."
        )
    problems = re.findall(r"Problem with given class_path '([^']+)':[ \t]*\n\s*(?!Parser key)([^\n]+)", message)
    if not problems:
        return message.rstrip()
    class_path, reason = problems[-1]
    hint = f"{_CLASS_PATH_HINT}\n" if "module" in reason or "import" in reason else ""
    return f"the class path '{class_path}' cannot be used: {reason.strip()}\n{hint}{message.rstrip()}"
