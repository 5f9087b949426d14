"""Lesion-level eval on Tufts val: positive teeth (classifier) -> their crop seg (>PT) warped to the film."""
import sys, numpy as np, cv2
sys.path.insert(0, "/work/main"); sys.path.insert(0, "/tmp/pa")
from pipelines.pano.evaluation.findings_data import Tufts
from pipelines.pano.evaluation import lesions
from crops import C, SPAN
run = sys.argv[1]; PT = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
p = np.load(f"/tmp/pa/{run}_valp.npy"); seg = np.load(f"/tmp/pa/{run}_valseg.npy").astype(np.float32)
va = np.load("/tmp/pa/val.npz"); meta = va["meta"]
t = Tufts("periapical"); ids = sorted(set(int(m[0]) for m in meta)); gts = {i: t.mask(i) for i in ids}
def M_of(m):
    _, _, ex, ey, dx, dy, w = m; d = np.array([dx, dy]); s = SPAN * w / C
    exv = np.array([-d[1], d[0]]) * s; eyv = d * s
    o = np.array([ex, ey]) - exv * (C / 2) - eyv * (0.55 * C)
    return np.array([[exv[0], eyv[0], o[0]], [exv[1], eyv[1], o[1]]], np.float32)
films = {}
for j, m in enumerate(meta):
    films.setdefault(int(m[0]), []).append(j)
def maps(th):
    out = {}
    for i in ids:
        H, W = gts[i].shape; acc = np.zeros((H, W), np.uint8)
        for j in films[i]:
            if p[j] < th: continue
            sm = (seg[j] > PT).astype(np.uint8)
            n, lab = cv2.connectedComponents(sm, connectivity=8)
            if n > 1:  # keep the component nearest the apex (C/2, 0.55C)
                ys, xs = np.nonzero(lab); dd = (xs - C / 2) ** 2 + (ys - 0.55 * C) ** 2
                sm = (lab == lab[ys[dd.argmin()], xs[dd.argmin()]]).astype(np.uint8)
            else:
                sm = np.zeros((C, C), np.uint8); cv2.circle(sm, (C // 2, int(0.55 * C)), int(0.5 * C / SPAN), 1, -1)
            acc |= cv2.warpAffine(sm, M_of(meta[j]), (W, H), flags=cv2.INTER_NEAREST)
        out[i] = acc
    return out
def run_th(th, half=None):
    tot = lesions.Counts(); ms = maps(th)
    for k, i in enumerate(ids):
        if half is not None and k % 2 != half: continue
        n, lab = cv2.connectedComponents(ms[i], connectivity=8)
        tot.add(lesions.compare(lab, n - 1, gts[i]))
    return tot
ths = np.quantile(p, [1 - q for q in (0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05)])
res = {th: run_th(th) for th in ths}
for th, c in res.items():
    print(f"th {th:.3f} P {c.precision:.3f} R {c.recall:.3f} F1 {c.f1:.3f} n {c.tp + c.fp} tp {c.tp} dice {c.dice:.3f}")
ho = lesions.Counts()
for h in (0, 1):
    rr = {th: run_th(th, h) for th in ths}
    best = max(ths, key=lambda th: (rr[th].precision >= 0.5, rr[th].f1)); ho.add(run_th(best, 1 - h))
print(f"held out P {ho.precision:.3f} R {ho.recall:.3f} F1 {ho.f1:.3f}")
