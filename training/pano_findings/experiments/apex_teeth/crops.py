"""Per-tooth apex crops of Tufts films (canonical: crown up, apex at (C/2, 0.55 C)), labels."""
import json, sys, numpy as np, cv2
sys.path.insert(0, "/work/main")
from pipelines.pano.evaluation.findings_data import Tufts
C = 112          # stored crop side
SPAN = 3.5       # crop side in tooth widths
K = 0.5          # apex circle radius in tooth widths (label rule)

def axis(poly, fdi):
    c = poly.mean(0); _, _, vt = np.linalg.svd(poly - c, full_matrices=False)
    ax = vt[0]; proj = (poly - c) @ ax
    upper = (fdi // 10) in (1, 2, 5, 6)
    ends = [c + ax * proj.min(), c + ax * proj.max()]
    e = min(ends, key=lambda p: p[1]) if upper else max(ends, key=lambda p: p[1])
    d = (e - c); d /= np.linalg.norm(d) + 1e-9   # unit vector crown -> apex
    width = float(np.ptp((poly - c) @ vt[1]))
    return e, d, width

def crop(img, apex, d, width, interp=None):
    s = SPAN * width / C          # film px per crop px
    # crop axes: y along d (down = toward apex and beyond), x perpendicular
    ex = np.array([-d[1], d[0]]) * s; ey = d * s
    o = apex - ex * (C / 2) - ey * (0.55 * C)
    M = np.array([[ex[0], ey[0], o[0]], [ex[1], ey[1], o[1]]], np.float32)
    return cv2.warpAffine(img, M, (C, C), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

if __name__ == "__main__":
    t = Tufts("periapical")
    split = json.load(open("/work/main/training/pano/split_tufts.json"))
    for key in ("train", "val"):
        X, Y, meta, MK = [], [], [], []
        for i in split[key]:
            im = t.images[i]; H, W = im["height"], im["width"]
            img = t.pixels(i)
            lo, hi = np.percentile(img, [1, 99]); img = np.clip((img - lo) / max(hi - lo, 1) * 255, 0, 255).astype(np.uint8)
            m = t.mask(i).astype(np.uint8)
            for a in t.teeth.get(i, []):
                p = np.asarray(a["segmentation"][0], float).reshape(-1, 2)
                e, d, w = axis(p, a["category_id"])
                r = np.zeros((H, W), np.uint8); cv2.circle(r, tuple(int(v) for v in e), int(K * w), 1, -1)
                inter = int((r & m).sum())
                y = 1 if inter > 0.05 * min(int(r.sum()), 10**9) or (inter > 0 and inter > 0.05 * m[r > 0].size) else 0
                X.append(crop(img, e, d, w)); MK.append(crop(m * 255, e, d, w)); Y.append(inter); meta.append((i, a["category_id"], *e, *d, w))
        np.savez_compressed(f"/tmp/pa/{key}.npz", x=np.stack(X), mask=np.stack(MK), inter=np.array(Y), meta=np.array(meta))
        print(key, len(X))
