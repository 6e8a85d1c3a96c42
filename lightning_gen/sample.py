"""The sample job's old import path: everything lives in :mod:`lightning_gen.jobs.sample`."""

from lightning_gen.jobs.sample import (  # noqa: F401
    WRITERS,
    accepts_prior,
    build_parser,
    check_args,
    draw,
    main,
    prior_kwargs,
    write_image_samples,
    write_sequence_samples,
    writer_of,
)
