"""The jobs behind ``lightning-gen``'s own subcommands, the top layer (nets <- models <- jobs; data and metrics
below): :mod:`~lightning_gen.jobs.sample` (samples from a checkpoint), :mod:`~lightning_gen.jobs.evaluate`
(metrics against a dataset's reference split) and :mod:`~lightning_gen.jobs.sweep` (a W&B sweep file run locally).
Nothing below this folder imports from it."""
