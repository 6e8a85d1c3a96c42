"""Whether a score follows its published protocol (so that a short evaluation does not look like a published
score). A metric with a protocol is marked ``comparable_with_published``, and ``not_comparable`` with the reasons
where a setting differs; MMD, the music statistics and the ELBO are this project's own and are not marked."""

from __future__ import annotations

from lightning_gen.jobs.evaluate.options import TIMEGAN_ITERATIONS, TIMEGAN_REPEATS, TimeGANSettings

#: Inception-feature image metrics: the fewest samples per set (generated and real) of the published numbers. FID
#: and KID are biased upward by small sets (Heusel et al. 2017 ask for 10,000 or more); the Inception Score is
#: published on 50,000 samples in 10 splits (Salimans et al. 2016); precision / recall as FID here.
IMAGE_MIN_SAMPLES = {"fid": 10000, "kid": 10000, "precision_recall": 10000, "is": 50000}
NOT_COMPARABLE = "not comparable with published scores"


def timegan_deviations(name: str, timegan: TimeGANSettings, num_real: int, num_generated: int) -> list[str]:
    """How the settings of TimeGAN score ``name`` differ from TimeGAN's protocol (empty: they do not)."""
    reasons = []
    flag = "--disc-iterations" if name == "discriminative" else "--pred-iterations"
    iterations = timegan.iterations(name)
    if iterations != TIMEGAN_ITERATIONS[name]:
        reasons.append(f"{flag} {iterations:,} (TimeGAN: {TIMEGAN_ITERATIONS[name]:,})")
    if timegan.repeats != TIMEGAN_REPEATS:
        reasons.append(f"--repeats {timegan.repeats} (TimeGAN: the mean of {TIMEGAN_REPEATS})")
    if num_generated != num_real:
        reasons.append(f"{num_generated:,} generated vs {num_real:,} real sequences (TimeGAN: as many of each)")
    return reasons


def image_deviations(name: str, extractor: dict, num_real: int, num_generated: int) -> list[str]:
    """How an image metric's features and sample counts differ from the published protocol (empty: they do not)."""
    reasons = []
    if not extractor.get("comparable_with_published"):
        reasons.append(f"{extractor.get('name')} features, not the standard FID Inception-v3")
    need = IMAGE_MIN_SAMPLES[name]
    if min(num_real, num_generated) < need:
        reasons.append(f"{num_generated:,} generated / {num_real:,} real samples (published: {need:,} or more each)")
    return reasons


def mark_protocol(
    values: dict, timegan: TimeGANSettings, extractor: dict | None, num_real: int, split_size: int, fake
) -> list[str] | None:
    """Mark every metric that has a published protocol with ``comparable_with_published`` and, where a setting
    differs, ``not_comparable`` (the reasons). Returns all reasons, or None when no metric has a protocol (MMD, the
    music statistics and the ELBO are this project's own)."""
    num_generated = 0 if fake is None else len(fake)
    subset = [f"--num-reference {num_real:,} of the split's {split_size:,} items"] if num_real < split_size else []
    found, checked = [], False
    for name, entry in values.items():
        if name in TIMEGAN_ITERATIONS:
            reasons = timegan_deviations(name, timegan, num_real, num_generated)
        elif name in IMAGE_MIN_SAMPLES and extractor:
            reasons = image_deviations(name, extractor, num_real, num_generated)
        else:
            continue
        reasons += subset
        checked = True
        entry["comparable_with_published"] = not reasons
        if reasons:
            entry["not_comparable"] = reasons
            found += [r for r in reasons if r not in found]
    return found if checked else None
