"""Lesion-level P/R/F1 on Tufts val from per-tooth probabilities (GT teeth), apex circles merged."""
import sys, json, numpy as np, cv2
sys.path.insert(0, "/work/main")
from pipelines.pano.evaluation.findings_data import Tufts
from pipelines.pano.evaluation import lesions
K = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
p = np.load(sys.argv[1]); va = np.load("/tmp/pa/val.npz"); meta = va["meta"]
t = Tufts("periapical")
ids = sorted(set(int(m[0]) for m in meta))
gts = {i: t.mask(i) for i in ids}
def run(th, half=None):
    tot = lesions.Counts()
    for i in ids:
        if half is not None and (ids.index(i) % 2) != half: continue
        H, W = gts[i].shape
        sel = np.nonzero((meta[:, 0] == i) & (p >= th))[0]
        m = np.zeros((H, W), np.uint8)
        for j in sel:
            _, _, ex, ey, dx, dy, w = meta[j]
            cv2.circle(m, (int(ex), int(ey)), int(K * w), 1, -1)
        n, lab = cv2.connectedComponents(m, connectivity=8)
        tot.add(lesions.compare(lab, n - 1, gts[i]))
    return tot
ths = np.quantile(p, [1 - q for q in (0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.07)])
for th in ths:
    c = run(th)
    print(f"th {th:.3f} P {c.precision:.3f} R {c.recall:.3f} F1 {c.f1:.3f} n {c.tp + c.fp} tp {c.tp} dice {c.dice:.3f}")
# held out: choose th on one half (best F1 with P>=.5 else best F1), count other half
res = lesions.Counts()
for h in (0, 1):
    best = max(ths, key=lambda th: (run(th, h).precision >= 0.5, run(th, h).f1))
    res.add(run(best, 1 - h))
print(f"held out P {res.precision:.3f} R {res.recall:.3f} F1 {res.f1:.3f}")
