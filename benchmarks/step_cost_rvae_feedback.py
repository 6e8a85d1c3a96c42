"""R-VAE training-step CPU cost on sines, decoder with and without feedback (``feed_previous``), the two
alternated in one process so machine load hits both alike. Run alone:
``OMP_NUM_THREADS=1 python benchmarks/step_cost_rvae_feedback.py``."""

import time

import torch

from lightning_gen.data.sines import make_sines
from lightning_gen.models import RVAE
from lightning_gen.nets import RecurrentDecoder, RecurrentEncoder


def main(repeats: int = 6, batches: int = 20) -> None:
    torch.set_num_threads(1)
    data = torch.tensor(make_sines(128 * batches, 24, 5, seed=1)).float().split(128)
    models = {}
    for feed_previous in (True, False):  # the shipped sines networks, only the feedback differs
        torch.manual_seed(0)
        enc = RecurrentEncoder(5, 16, 48, bidirectional=True)
        model = RVAE(enc, RecurrentDecoder(16, 5, 48, feed_previous=feed_previous))
        models[feed_previous] = (model, torch.optim.Adam(model.parameters(), 1e-3))
    seconds = dict.fromkeys(models, 0.0)
    for _ in range(repeats):
        for feed_previous, (model, opt) in models.items():
            start = time.process_time()
            for x in data:
                nll, kl, _ = model.elbo_terms(x, 0.5)
                (nll.mean() + kl.mean()).backward()
                opt.step()
                opt.zero_grad()
            seconds[feed_previous] += time.process_time() - start
    steps = repeats * len(data)
    for feed_previous, s in seconds.items():
        print(f"feed_previous={feed_previous}: {1000 * s / steps:.1f} ms per step (CPU)")
    print(f"ratio with / without feedback: {seconds[True] / seconds[False]:.2f}")


if __name__ == "__main__":
    main()
