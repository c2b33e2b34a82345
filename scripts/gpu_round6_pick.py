"""Print OVERRIDE when the bench JSON ``B`` projects a whole method over 2 % faster than
``A`` (both `gaussianip bench` outputs), else nothing: gpu_round6.sh's choice of switch.
    python3 scripts/gpu_round6_pick.py A.json B.json OVERRIDE"""

import json
import sys


def whole(path: str) -> float:
    try:
        with open(path) as f:
            return float(json.load(f)["whole_method_seconds"])
    except (OSError, KeyError, TypeError, ValueError):
        return float("inf")


a, b, override = sys.argv[1:4]
print(override if whole(b) < 0.98 * whole(a) else "")
