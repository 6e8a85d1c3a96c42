"""Train a tiny R-VAE on synthetic sines from Python (seconds on a CPU), through the same CLI as `lightning-gen fit`.

    python examples/train_tiny.py [OUT_DIR]       # default examples/out; prints the checkpoint's path

The arguments are exactly the command line's; any config and override works the same way, e.g. the conditional
R-VAE (frequency bands as labels) stacks its overlay after the config: add
``"--config", os.path.join(REPO, "configs", "rvae", "sines_cond.yaml")`` after ``sines.yaml``.
"""

import os
import sys

from lightning_gen.cli import run_lightning_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(out_dir: str) -> str:
    cli = run_lightning_cli(
        [
            "fit",
            "--config",
            os.path.join(REPO, "configs", "rvae", "sines.yaml"),
            "--threads=1",
            "--trainer.max_epochs=2",
            "--trainer.limit_train_batches=4",
            "--trainer.limit_val_batches=1",
            "--trainer.num_sanity_val_steps=0",
            "--trainer.enable_model_summary=false",
            "--trainer.callbacks=[]",
            "--data.init_args.num_sequences=256",
            "--data.init_args.batch_size=16",
            f"--trainer.default_root_dir={out_dir}",
        ]
    )
    return cli.trainer.checkpoint_callback.last_model_path


if __name__ == "__main__":
    print(train(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "examples", "out")))
