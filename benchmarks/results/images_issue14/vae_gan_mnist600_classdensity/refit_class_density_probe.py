import torch, numpy as np, time
torch.set_num_threads(1); torch.manual_seed(0)
from torch.utils.data import DataLoader, TensorDataset
from lightning_gen.checkpoints import load_model
clf = load_model("benchmarks/results/images_issue12/cpu600/classifier/final.ckpt").cpu().eval()
ck = torch.load("benchmarks/results/images_issue14/vae_gan_mnist600/vae_gan_cond/final.ckpt", weights_only=False, map_location="cpu")
from lightning_gen.models.latent_density import LatentDensity
sd = ck["state_dict"]
for name in ("latent_density", "gan_density"):
    fresh = LatentDensity(32, "gmm", 100, 10).state_dict()
    for k, v in fresh.items():
        sd[f"{name}.{k}"] = v
torch.save(ck, "/tmp/lead_cvaegan_nodensity.ckpt")
m = load_model("/tmp/lead_cvaegan_nodensity.ckpt").cpu().eval()
d = np.load("../shared/data/mnist-t10k/mnist_t10k.npz")
x = torch.from_numpy(d["images"]).float()[:, None] / 127.5 - 1; y = torch.from_numpy(d["labels"]).long()
print("train codes", m.prior_max_codes)
t = time.process_time()
m.fit_latent_density(DataLoader(TensorDataset(x[:8550], y[:8550]), batch_size=256))
print("refit cpu s", round(time.process_time() - t, 1))
labels = torch.arange(10).repeat_interleave(200)
with torch.no_grad():
    imgs = m.sample(2000, labels=labels)
    pred = torch.cat([clf.network.head(clf.features(c)).argmax(1) for c in imgs.split(500)])
print("class-density accuracy", float((pred == labels).float().mean()))
np.savez("/tmp/lead_cvaegan_classdensity_samples.npz", samples=((imgs + 1) / 2).numpy(), labels=labels.numpy())
