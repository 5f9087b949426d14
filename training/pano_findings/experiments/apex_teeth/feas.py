import json, numpy as np, cv2, sys
sys.path.insert(0, "/work/main")
from pipelines.pano.evaluation.findings_data import Tufts
t = Tufts("periapical")
split = json.load(open("/work/main/training/pano/split_tufts.json"))
def apex(poly, fdi):
    c = poly.mean(0); u, s, vt = np.linalg.svd(poly - c, full_matrices=False)
    ax = vt[0]; proj = (poly - c) @ ax
    upper = (fdi // 10) in (1, 2, 5, 6)
    ends = [c + ax * proj.min(), c + ax * proj.max()]
    e = min(ends, key=lambda p: p[1]) if upper else max(ends, key=lambda p: p[1])
    width = np.ptp((poly - c) @ vt[1])
    length = np.ptp(proj)
    return e, width, length
for k in sys.argv[1:]:
    k = float(k)
    ious = []; npos = 0; nteeth = 0; multi = 0
    for key in ("train", "val"):
        for i in split[key]:
            im = t.images[i]; H, W = im["height"], im["width"]
            m = t.mask(i).astype(np.uint8)
            anns = t.teeth.get(i, [])
            regs = []
            for a in anns:
                p = np.asarray(a["segmentation"][0], float).reshape(-1, 2)
                e, w, l = apex(p, a["category_id"])
                r = np.zeros((H, W), np.uint8); cv2.circle(r, tuple(int(v) for v in e), int(k * w), 1, -1)
                regs.append(r)
            nteeth += len(regs)
            if not m.any(): continue
            n, comp = cv2.connectedComponents(m, connectivity=8)
            pos = set()
            for j in range(1, n):
                L = comp == j
                hit = [q for q, r in enumerate(regs) if (r[L]).any() and r[L].sum() > 0.05 * min(L.sum(), r.sum())]
                pos |= set(hit)
                if len(hit) > 1: multi += 1
                if not hit: ious.append((key, 0.0, L.sum())); continue
                U = np.zeros_like(m)
                for q in hit: U |= regs[q]
                inter = (U.astype(bool) & L).sum(); iou = inter / (U.astype(bool) | L).sum()
                ious.append((key, iou, L.sum()))
            npos += len(pos)
    a = np.array([x[1] for x in ious]); s = np.array([x[2] for x in ious])
    print(f"k={k} lesions {len(a)} iou>=0.1 {np.mean(a>=0.1):.3f} (area>=400: {np.mean(a[s>=400]>=0.1):.3f}) none {np.mean(a==0):.3f} median iou {np.median(a):.2f} pos teeth {npos}/{nteeth} multi {multi}")
