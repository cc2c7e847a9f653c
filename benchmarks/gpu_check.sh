#!/usr/bin/env bash
# The GPU path of archsearch's trainer, proved on one machine in <= 5 minutes; prints one JSON object.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, on a machine with a CUDA GPU
#
# 1. installs the project offline against the machine's own torch: `pip install --no-deps -e .`, plus
#    wheels from $WHEELS (default shared/wheels) for what the trainer needs and the machine lacks
#    (timm, pyyaml, huggingface_hub, safetensors, pytest): make them where there is a network with
#    `pip download --no-deps -d shared/wheels timm pyyaml huggingface_hub safetensors pytest iniconfig pluggy`
#    (a few MiB); torch and torchvision are never installed here;
# 2. runs the `gpu`-marked tests (AMP bf16/fp16, channels-last, compile, the timm pipeline, exact resume);
# 3. benchmarks/gpu_check.py: a DeepMAD-R18 and a DeiT-Tiny-sized ViT trained ~200 steps at 224 px on
#    synthetic images with AMP + channels-last + torch.compile (loss falls, no NaN), images/s with and without
#    AMP, exact resume from a mid-epoch checkpoint;
# 4. with more than one GPU, 2-process DDP through torchrun (the ranks' weights must agree).
#
# Exit status 0 when every check passed. Each step has its own time limit (TIMEOUT_* seconds below).
# A dry run of the script itself on a CPU: SKIP_INSTALL=1 CHECK_ARGS="--device cpu --quick" bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-shared/wheels}
PY=${PYTHON:-python}
OUT=$(mktemp -d)
export CUBLAS_WORKSPACE_CONFIG=:4096:8 PYTHONWARNINGS=ignore
start=$(date +%s)
step() { echo "[gpu_check $(( $(date +%s) - start ))s] $*" >&2; }

step "environment"
$PY - <<'EOF' > "$OUT/env.json"
import json, os, torch
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
                  "gpus": torch.cuda.device_count(), "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                  "bf16": torch.cuda.is_available() and torch.cuda.is_bf16_supported(), "cpus": os.cpu_count()}))
EOF
cat "$OUT/env.json" >&2

step "install (offline, --no-deps, against this torch)"
missing=$($PY - <<'EOF'
import importlib.util
need = {"timm": "timm", "yaml": "pyyaml", "huggingface_hub": "huggingface_hub", "safetensors": "safetensors",
        "pytest": "pytest", "numpy": "numpy", "PIL": "pillow", "torchvision": "torchvision"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
EOF
)
install_log="$OUT/install.log"
install_rc=0
if [ -n "${SKIP_INSTALL:-}" ]; then
  step "install skipped (SKIP_INSTALL)"
elif [ -n "$missing" ]; then
  step "missing: $missing (from $WHEELS)"
  case " $missing " in *" torchvision "*) step "torchvision is missing: it must match this torch, none is carried";; esac
  wheels=$(echo "$missing" | tr ' ' '\n' | grep -v '^torchvision$' | tr '\n' ' ')
  if [ -n "${wheels// }" ]; then
    timeout 120 $PY -m pip install --no-index --no-deps --find-links "$WHEELS" $wheels iniconfig pluggy >> "$install_log" 2>&1 \
      || { install_rc=$?; tail -5 "$install_log" >&2; }
  fi
fi
if [ -z "${SKIP_INSTALL:-}" ]; then
  timeout 120 $PY -m pip install --no-index --no-deps --no-build-isolation -e . >> "$install_log" 2>&1 \
    || { install_rc=$?; tail -5 "$install_log" >&2; }
fi

step "gpu-marked tests"
TIMEOUT_TESTS=${TIMEOUT_TESTS:-100}
timeout "$TIMEOUT_TESTS" $PY -m pytest -q -p no:cacheprovider -o addopts="" -m gpu tests/ > "$OUT/pytest.txt" 2>&1
tests_rc=$?
tail -3 "$OUT/pytest.txt" >&2

step "training checks (resnet, resnet_fp32, vit, resume)"
TIMEOUT_TRAIN=${TIMEOUT_TRAIN:-150}
timeout "$TIMEOUT_TRAIN" $PY benchmarks/gpu_check.py ${CHECK_ARGS:-} > "$OUT/train.json" 2> "$OUT/train.err"
train_rc=$?
[ $train_rc -ne 0 ] && tail -5 "$OUT/train.err" >&2

gpus=$($PY -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
ddp_rc=0
if [ "${gpus:-0}" -gt 1 ]; then
  step "2-process DDP"
  timeout 60 $PY -m torch.distributed.run --standalone --nproc_per_node=2 benchmarks/gpu_check.py --ddp-worker \
    > "$OUT/ddp.json" 2> "$OUT/ddp.err"
  ddp_rc=$?
  [ $ddp_rc -ne 0 ] && tail -5 "$OUT/ddp.err" >&2
fi

step "done"
OUT="$OUT" INSTALL_RC=$install_rc TESTS_RC=$tests_rc TRAIN_RC=$train_rc DDP_RC=$ddp_rc ELAPSED=$(( $(date +%s) - start )) $PY - <<'EOF'
import json, os, re
out = os.environ["OUT"]

def read_json(name):
    try:
        lines = [l for l in open(os.path.join(out, name)).read().splitlines() if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except OSError:
        return None

summary = open(os.path.join(out, "pytest.txt")).read().strip().splitlines()[-1:] if os.path.exists(os.path.join(out, "pytest.txt")) else []
counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary[0])} if summary else {}
ddp = read_json("ddp.json")
result = {
    "env": read_json("env.json"), "install_rc": int(os.environ["INSTALL_RC"]),
    "tests": {"rc": int(os.environ["TESTS_RC"]), **counts, "summary": summary[0] if summary else None},
    "train": read_json("train.json"), "train_rc": int(os.environ["TRAIN_RC"]),
    "ddp": ddp["ddp"] if ddp else None, "ddp_rc": int(os.environ["DDP_RC"]), "elapsed_s": int(os.environ["ELAPSED"]),
}
train = result["train"] or {}
result["ok"] = (result["install_rc"] == 0 and result["tests"]["rc"] == 0 and result["train_rc"] == 0 and bool(train.get("ok"))
                and result["ddp_rc"] == 0 and (ddp is None or ddp["ddp"]["weights_agree"]))
print(json.dumps(result, indent=2))
raise SystemExit(0 if result["ok"] else 1)
EOF
