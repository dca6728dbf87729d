#!/usr/bin/env bash
# Issue 24's training on a lent GPU, in bounded pieces: each call trains the next group of the order below for at most
# LIMIT seconds, then writes what it has under OUTDIR, so that a lease of about 10 minutes never loses work.
#
#     RESLENS_DATA=path/to/cifar10 bash benchmarks/gpu_train.sh OUTDIR [LIMIT_S]
#     bash benchmarks/gpu_train.sh --dry-run        # says which group the next piece would train, trains nothing
#
# The order (nets of one group train together, on one device, each with its own batches):
#   1. plain56                                            (the full recipe, so the degradation pair shares one)
#   2. resnet56-gate-6, resnet56-shortgate-6, resnet56-dropout
#   3. resnet164-bottleneck, resnet164-bottleneck-preact
#   4. plain20, resnet20, resnet110                       (the full recipe)
# A group is done when every net of it has a card on the paper's full schedule (64k iterations, not stopped early).
#
# Resume state: `train --time-limit` pauses before the limit and leaves pretrained/.resume/NAME.pt; this script copies
# it to OUTDIR/resume/, and the caller commits it as train_state/NAME.pt. At the start of a piece, train_state/*.pt
# go back to pretrained/.resume/, so the next piece, on a fresh machine, continues where the last one stopped.
# Finished nets come back as OUTDIR/pretrained/NAME.{safetensors,json} with OUTDIR/SHA256SUMS (at most 8 files a
# piece: the largest group has 3 nets); check them with `sha256sum -c` before copying them into pretrained/, and run
# `python -m analysis evaluate NAME` on the CPU to see the card reproduced.
set -u
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; OUT=$(mktemp -d); else OUT=${1:?usage: bash benchmarks/gpu_train.sh OUTDIR [LIMIT_S]}; fi
LIMIT=${2:-480}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
ORDER=("plain56" "resnet56-gate-6,resnet56-shortgate-6,resnet56-dropout"
       "resnet164-bottleneck,resnet164-bottleneck-preact" "plain20,resnet20,resnet110")

done_net() {  # a card on the full schedule, not stopped early
    python - "$1" <<'EOF'
import json, sys
from pathlib import Path
p = Path("pretrained") / f"{sys.argv[1]}.json"
d = json.loads(p.read_text()) if p.is_file() else {}
ok = d.get("schedule", {}).get("iterations") == 64000 and not d.get("stopped_early")
sys.exit(0 if ok else 1)
EOF
}

GROUP=""
for g in "${ORDER[@]}"; do
    for n in ${g//,/ }; do
        if ! done_net "$n"; then GROUP=$g; break 2; fi
    done
done
if [ -z "$GROUP" ]; then
    echo "every group of the order is trained" | tee "$OUT/gpu_train.md"
    exit 0
fi
echo "next group: $GROUP"
[ "$DRY" = 1 ] && exit 0
mkdir -p pretrained/.resume
if ! nvidia-smi > /dev/null 2>&1; then
    echo "No GPU here (nvidia-smi found none): nothing trained." | tee "$OUT/gpu_train.md"
    exit 2
fi
for n in ${GROUP//,/ }; do  # continue from the committed resume state
    [ -f "train_state/$n.pt" ] && cp "train_state/$n.pt" "pretrained/.resume/$n.pt"
done
t0=$SECONDS
python -m analysis train "$GROUP" --time-limit "$LIMIT" --seed 0 > "$OUT/train.log" 2>&1
rc=$?
mkdir -p "$OUT/pretrained" "$OUT/resume"
{
    echo "group: $GROUP; exit $rc after $((SECONDS - t0)) s; $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
    echo
    echo "| net | state |"
    echo "| --- | --- |"
} > "$OUT/gpu_train.md"
for n in ${GROUP//,/ }; do
    if [ -f "pretrained/.resume/$n.pt" ]; then
        cp "pretrained/.resume/$n.pt" "$OUT/resume/$n.pt"
        echo "| $n | paused: resume state in resume/$n.pt (commit it as train_state/$n.pt) |" >> "$OUT/gpu_train.md"
    elif done_net "$n"; then
        cp "pretrained/$n.safetensors" "pretrained/$n.json" "$OUT/pretrained/"
        echo "| $n | trained: pretrained/$n.safetensors and its card |" >> "$OUT/gpu_train.md"
    else
        echo "| $n | neither trained nor paused: see train.log |" >> "$OUT/gpu_train.md"
    fi
done
(cd "$OUT" && find pretrained resume -type f -print0 | sort -z | xargs -0 -r sha256sum > SHA256SUMS)
tail -3 "$OUT/train.log"
cat "$OUT/gpu_train.md"
