#!/usr/bin/env bash
# The CUDA side of livedance, end to end, on a machine with an NVIDIA GPU:
#   1. both training stages for a few steps on CUDA in one process, and the
#      unit stage twice with one seed (are the weights the same?);
#   2. both stages under torchrun, one process per GPU (NCCL all-reduces), the
#      composer stopped early and resumed (the all-reduced stop flag);
#   3. `dance` on CUDA and on the CPU with the same seed: the same beats, and
#      at temperature 0 (no sampling noise: CUDA's and the CPU's random
#      generators are different streams) poses within 1 cm mean / 5 cm p99;
#      at temperature 1 the same seed twice on CUDA gives the same dance;
#   4. `perform` on CUDA for a few seconds (the live runner's threads);
#   5. `bench engine --json` with the engine on CUDA and on the CPU (each also
#      reports unit latency for 1, 8 and 64 dancers on every device).
# Needs the CUDA build of torch (docs/engine.md, "Running on a GPU").
# Without a GPU it stops at once with exit 2 and says why.
#
# Usage: bash scripts/gpu_check.sh            (results in $OUT, else out/gpu_check)
#        PYTHON=/path/to/python bash scripts/gpu_check.sh   (a Python whose torch has CUDA)
#        REHEARSE=1 bash scripts/gpu_check.sh  (every step on the CPU, 2 gloo processes:
#                                               checks the script itself where there is no GPU)
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
DIR=${OUT:-out/gpu_check}
SONG=livedance/assets/demo.ogg
mkdir -p "$DIR"
LD=("$PY" -m livedance.cli)
failed=()

say() { printf '\n== %s\n' "$*"; }
check() {  # check NAME COMMAND...: run it, log to $DIR/NAME.log, remember a failure
  local name=$1; shift
  if timeout 600 "$@" >"$DIR/$name.log" 2>&1; then
    echo "ok   $name"
  else
    echo "FAIL $name (exit $?; last lines of $DIR/$name.log:)"; tail -n 15 "$DIR/$name.log" | sed 's/^/     /'
    failed+=("$name")
  fi
}

DEV=cuda
say "GPU"
if [ "${REHEARSE:-0}" = 1 ]; then
  echo "rehearsal: every step on the CPU (torchrun: 2 gloo processes), to check the script, not a GPU"
  DEV=cpu
fi
if [ "$DEV" = cuda ] && { ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; }; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi finds none): run it on a machine with one" >&2
  exit 2
fi
if [ "$DEV" = cuda ]; then
nvidia-smi -L
"$PY" - <<'EOF' || exit 2
import sys

import torch

if torch.version.cuda is None:
    sys.exit(f"gpu_check: torch {torch.__version__} is the CPU-only build: install the CUDA build "
             "(docs/engine.md, 'Running on a GPU'), or point PYTHON at a Python that has it")
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU: "
             "check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s), "
      f"cuda:0 = {torch.cuda.get_device_name(0)}")
EOF
NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())")
else
NGPU=2
fi

say "1. training on CUDA, one process"
TRAIN=(--data synthetic --steps 20 --batch 32 --val-every 10 --hidden 64 --no-progress --device "$DEV")
check train_units_cuda "${LD[@]}" train units "${TRAIN[@]}" --out "$DIR/units.pt"
check train_units_cuda_again "${LD[@]}" train units "${TRAIN[@]}" --out "$DIR/units_again.pt"
check train_composer_cuda "${LD[@]}" train composer "${TRAIN[@]}" --window 4 --units "$DIR/units.pt" --out "$DIR/full.pt"
check same_seed_same_weights_on_cuda "$PY" - "$DIR/units.pt" "$DIR/units_again.pt" <<'EOF'
import sys

import torch

from livedance.model.checkpoint import read_checkpoint

a, b = (read_checkpoint(p)["weights"] for p in sys.argv[1:3])
diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
print(f"units stage, same seed twice on CUDA: max weight difference {diff:.3g}")
# Informational beyond this: ops without a deterministic CUDA kernel only warn (docs/training.md).
sys.exit(0 if diff < 1e-3 else 1)
EOF

say "2. training under torchrun, $NGPU process(es), one per GPU"
[ "$NGPU" -lt 2 ] && echo "(one GPU: torchrun runs one process, so NCCL has nothing to all-reduce; 2+ GPUs exercise it)"
RUN=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$NGPU" -m livedance.cli)
check torchrun_units "${RUN[@]}" train units "${TRAIN[@]}" --out "$DIR/ddp_units.pt"
check torchrun_composer_part "${RUN[@]}" train composer "${TRAIN[@]}" --window 4 --units "$DIR/ddp_units.pt" --out "$DIR/ddp_full.pt" --stop-after 10
check torchrun_composer_resume "${RUN[@]}" train composer "${TRAIN[@]}" --window 4 --units "$DIR/ddp_units.pt" --out "$DIR/ddp_full.pt" --resume
check torchrun_checkpoint "$PY" - "$DIR/ddp_full.pt" "$NGPU" "$DEV" <<'EOF'
import sys

from livedance.model.checkpoint import load_checkpoint

meta = load_checkpoint(sys.argv[1], sys.argv[3]).meta
print(f"world {meta['world']}, step {meta['step']}, final {meta['final']}")
sys.exit(0 if meta["world"] == int(sys.argv[2]) and meta["step"] == 20 and meta["final"] else 1)
EOF

say "3. dance on CUDA and on the CPU, seed 3"
check dance_cuda_t0 "${LD[@]}" --set engine.temperature=0 dance "$SONG" -o "$DIR/cuda_t0.npz" --seed 3 --compute "$DEV"
check dance_cpu_t0 "${LD[@]}" --set engine.temperature=0 dance "$SONG" -o "$DIR/cpu_t0.npz" --seed 3 --compute cpu
check dance_cuda_a "${LD[@]}" dance "$SONG" -o "$DIR/cuda_a.npz" --seed 3 --compute "$DEV"
check dance_cuda_b "${LD[@]}" dance "$SONG" -o "$DIR/cuda_b.npz" --seed 3 --compute "$DEV"
check dance_cpu_a "${LD[@]}" dance "$SONG" -o "$DIR/cpu_a.npz" --seed 3 --compute cpu
check dances_compare "$PY" - "$DIR" <<'EOF'
import sys

import numpy as np

d = sys.argv[1]
load = lambda name: np.load(f"{d}/{name}.npz")
cuda, cpu, a, b, c = (load(n) for n in ("cuda_t0", "cpu_t0", "cuda_a", "cuda_b", "cpu_a"))
ok = True
same_beats = all(np.array_equal(cuda["beats"], x["beats"]) for x in (cpu, a, b, c))
print(f"beats: {len(cuda['beats'])} tracked, the same in all five dances: {same_beats}")
ok &= same_beats
n = min(len(cuda["joints"]), len(cpu["joints"]))
err = np.linalg.norm(cuda["joints"][:n] - cpu["joints"][:n], axis=-1)  # (frames, dancers, 24) metres
mean, p99, worst = float(err.mean()), float(np.percentile(err, 99)), float(err.max())
print(f"temperature 0, CUDA vs CPU joints: mean {mean * 100:.3f} cm, p99 {p99 * 100:.3f} cm, max {worst * 100:.3f} cm "
      "(tolerance: mean < 1 cm, p99 < 5 cm)")
ok &= mean < 0.01 and p99 < 0.05
same = np.array_equal(a["joints"], b["joints"])
print(f"temperature 1, same seed twice on CUDA: identical joints: {same}")
ok &= same
sys.exit(0 if ok else 1)
EOF

say "4. perform on CUDA, 6 s of the demo paced in real time"
check perform_cuda "${LD[@]}" -v perform --input "$SONG" --seconds 6 --no-window --compute "$DEV" --dancers 16 --record "$DIR/perform_cuda.npz"
grep -h "dance model on\|failed\|performed" "$DIR/perform_cuda.log" | sed 's/^/     /'

say "5. bench engine, the engine on CUDA and on the CPU"
BENCH=(bench engine --json --seconds "${BENCH_SECONDS:-12}" --live-seconds 4)
check bench_engine_cuda "${LD[@]}" --set "engine.compute=$DEV" "${BENCH[@]}"
check bench_engine_cpu "${LD[@]}" --set engine.compute=cpu "${BENCH[@]}"
"$PY" - "$DIR" <<'EOF'
import json
import sys

for which in ("cuda", "cpu"):
    try:
        lines = open(f"{sys.argv[1]}/bench_engine_{which}.log").read().splitlines()
        r = json.loads(next(x for x in reversed(lines) if x.startswith("{")))
    except (OSError, StopIteration, ValueError):
        print(f"engine on {which}: no JSON")
        continue
    print(f"engine on {r.get('engine_device')}: dancers_1 unit {r['dancers_1']['unit_ms_mean']} ms mean, "
          f"live fps {r['live']['fps']}, frame clock p99 at 64 dancers {r['frame_clock']['dancers_64']['frame_ms_p99']} ms")
    for dev, e in r["compute"].items():
        rows = ", ".join(f"{n}: {e[f'dancers_{n}']['unit_ms_mean']}/{e[f'dancers_{n}']['unit_ms_p99']} ms"
                         for n in (1, 8, 64))
        print(f"   units on {dev} ({e['name']}), mean/p99 by dancers: {rows}")
EOF

say "summary"
if [ ${#failed[@]} -eq 0 ]; then
  echo "gpu_check: all checks passed (logs and files in $DIR)"
else
  echo "gpu_check: ${#failed[@]} check(s) failed: ${failed[*]} (logs in $DIR)"
  exit 1
fi
