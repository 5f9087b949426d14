import sys, time, json, math, argparse, numpy as np, torch, cv2
import torch.nn.functional as F
from torch import nn
sys.path.insert(0, "/work/main")
from training.pano.model import TeethUNet
from training.onnx_import import init_from_folded_onnx
torch.set_num_threads(1)
ap = argparse.ArgumentParser(); ap.add_argument("--init", default="teeth"); ap.add_argument("--minutes", type=float, default=25)
ap.add_argument("--run", default="a"); ap.add_argument("--lr", type=float, default=1e-3); ap.add_argument("--eval-only", action="store_true"); ap.add_argument("--segw", type=float, default=1.0)
args = ap.parse_args()
C = 112
def labels(d): return (d["inter"] > 0.05 * np.pi * (0.5 * d["meta"][:, -1]) ** 2).astype(np.float32)
tr = np.load("/tmp/pa/train.npz"); va = np.load("/tmp/pa/val.npz")
xtr, ytr = tr["x"], labels(tr); xva, yva = va["x"], labels(va); mtr = tr["mask"]
def norm(x):
    x = x.astype(np.float32); m = x.mean((-1, -2), keepdims=True); s = x.std((-1, -2), keepdims=True) + 1e-3
    return (x - m) / s
class Apex(nn.Module):
    def __init__(self):
        super().__init__(); self.net = TeethUNet(1); self.fc = nn.Linear(160 + 2, 1)
        self.feat = None
        self.net.context.register_forward_hook(lambda m, i, o: setattr(self, "feat", o))
    def forward(self, x):
        seg = self.net(x)
        f = self.feat.mean((-1, -2))
        # apex window: the lower-middle of the crop
        win = seg[:, 0, 40:100, 20:92]
        g = torch.stack([win.amax((-1, -2)), torch.sigmoid(win).mean((-1, -2))], 1)
        return self.fc(torch.cat([f, g], 1))[:, 0], seg
model = Apex()
rng = np.random.default_rng(1)
src = {"teeth": "/work/main/models/pano-teeth/model.onnx", "pa": "/work/main/models/pano-periapical/model.onnx"}[args.init]
xb = torch.from_numpy(norm(xtr[rng.integers(len(xtr), size=32)]))[:, None]
w, b = init_from_folded_onnx(model.net, src, xb)
if args.init == "teeth":
    nn.init.normal_(model.net.head.weight, std=0.01); nn.init.zeros_(model.net.head.bias)
nn.init.zeros_(model.fc.weight); nn.init.constant_(model.fc.bias, -2.0)
def aug(x, mk):
    out = np.empty((len(x), C, C), np.float32); mo = np.empty((len(x), C, C), np.float32)
    for k, (im, mm) in enumerate(zip(x, mk)):
        a = rng.uniform(-8, 8); s = rng.uniform(0.9, 1.12); tx, ty = rng.uniform(-5, 5, 2)
        M = cv2.getRotationMatrix2D((C / 2, C / 2), a, s); M[:, 2] += (tx, ty)
        im = cv2.warpAffine(im, M, (C, C), borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        mm = cv2.warpAffine(mm, M, (C, C), borderMode=cv2.BORDER_REPLICATE).astype(np.float32) / 255
        if rng.random() < 0.5: im, mm = im[:, ::-1], mm[:, ::-1]
        mo[k] = mm
        g = rng.uniform(0.7, 1.4); im = 255 * (im / 255) ** g
        out[k] = im
    o = norm(out)
    o = o * rng.uniform(0.85, 1.15, (len(x), 1, 1)) + rng.uniform(0, 0.08) * rng.standard_normal(o.shape)
    return o.astype(np.float32), mo
SEGS = []
def evaluate():
    model.eval(); ps = []; SEGS.clear()
    with torch.no_grad():
        for i in range(0, len(xva), 128):
            lg, seg = model(torch.from_numpy(norm(xva[i:i + 128]))[:, None])
            ps.append((seg[:, 0, 40:100, 20:92].amax((-1, -2)) if SEGONLY else lg).numpy()); SEGS.append(torch.sigmoid(seg[:, 0]).numpy().astype(np.float16))
    p = np.concatenate(ps); o = np.argsort(-p); y = yva[o]
    tp = np.cumsum(y); prec = tp / np.arange(1, len(y) + 1); rec = tp / y.sum()
    apv = float((prec * y).sum() / y.sum())
    f1 = 2 * prec * rec / (prec + rec + 1e-9)
    ok = prec >= 0.5; r50 = float(rec[ok].max()) if ok.any() else 0.0
    rk = np.empty(len(p)); rk[np.argsort(p)] = np.arange(len(p)); npos = yva.sum()
    auc = (rk[yva > 0].sum() - npos * (npos - 1) / 2) / (npos * (len(p) - npos))
    return {"ap": round(apv, 3), "auc": round(float(auc), 3), "bestf1": round(float(f1.max()), 3), "r_at_p50": round(r50, 3)}, p
SEGONLY = args.eval_only
SEGW = args.segw
if args.eval_only:
    print(evaluate()[0]); sys.exit()
print("init", evaluate()[0], flush=True)
back = [p for n, p in model.named_parameters() if not n.startswith("fc.") and not n.startswith("net.head.")]
head = list(model.fc.parameters()) + list(model.net.head.parameters())
opt = torch.optim.AdamW([{"params": back, "lr": args.lr * 0.3}, {"params": head, "lr": args.lr}], weight_decay=1e-4)
pos = np.nonzero(ytr > 0)[0]; neg = np.nonzero(ytr == 0)[0]
t0 = time.time(); step = 0; B = 32; budget = args.minutes * 60; best = -1
base = [g["lr"] for g in opt.param_groups]
while time.time() - t0 < budget:
    model.train()
    for _ in range(100):
        frac = min((time.time() - t0) / budget, 1.0)
        for g, l in zip(opt.param_groups, base): g["lr"] = l * (min(1, step / 50)) * 0.5 * (1 + math.cos(math.pi * frac))
        idx = np.concatenate([rng.choice(pos, B // 4), rng.choice(neg, B - B // 4)])
        xa, ma = aug(xtr[idx], mtr[idx])
        x = torch.from_numpy(xa)[:, None]; y = torch.from_numpy(ytr[idx]); mt = torch.from_numpy(ma)[:, None]
        logit, seg = model(x)
        ps = torch.sigmoid(seg)
        sl = F.binary_cross_entropy_with_logits(seg, mt) + 1 - (2 * (ps * mt).sum() + 1) / (ps.sum() + mt.sum() + 1)
        loss = F.binary_cross_entropy_with_logits(logit, y) + SEGW * sl
        opt.zero_grad(); loss.backward(); opt.step(); step += 1
    r, p = evaluate(); r.update(step=step, min=round((time.time() - t0) / 60, 1), loss=round(float(loss), 3))
    print(json.dumps(r), flush=True)
    torch.save(model.state_dict(), f"/tmp/pa/{args.run}_last.pt"); np.save(f"/tmp/pa/{args.run}_valp.npy", p); np.save(f"/tmp/pa/{args.run}_valseg.npy", np.concatenate(SEGS))
    if r["ap"] > best: best = r["ap"]; torch.save(model.state_dict(), f"/tmp/pa/{args.run}_best.pt")
