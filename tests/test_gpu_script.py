"""benchmarks/gpu.sh runs end to end (on CPU, ``--tiny``) and writes its JSON of figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_script_tiny_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--device", "cpu",
                        "--tiny", "--threads", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["tiny"] is True and res["device"] == "cpu"
    for key in ("rbm_epoch_cd1_s", "rbm_epoch_pcd1_s", "ais_784x500_1000chains_s",
                "vae_epoch_s", "is_k5000_1000images_s"):
        assert res["figures"][key] > 0
