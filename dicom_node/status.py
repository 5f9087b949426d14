"""C-STORE status codes the node answers (PS3.4 Table GG.4-1, PS3.7 Annex C), one per cause.

A sender retries a 0xA7xx (out of resources) later; the others tell it the instance itself is
refused. Failures carry an Error Comment (0000,0902) naming the cause, never a tag's value.
"""

from __future__ import annotations

SUCCESS = 0x0000
# Queue (or the client's share) full, task store unreachable or slower than store_timeout_s.
OUT_OF_RESOURCES = 0xA700
# No Pixel Data, or the data set's SOP Class UID is not the one the command names.
DATASET_MISMATCH = 0xA900
# 0xC000-0xCFFF "cannot understand": the data set itself.
CANNOT_UNDERSTAND = 0xC000  # cannot be read (corrupt, truncated, too many elements)
BAD_INSTANCE_UID = 0xC001  # SOP Instance UID absent, not a UID, or not the command's
TOO_LARGE = 0xC002  # larger than limits.max_image_bytes
REFUSED = 0xC003  # the submission rules refused it (CONTRACT.md 10001/10002)
# Anything unexpected: the sender may retry; nothing was stored.
PROCESSING_FAILURE = 0x0110
