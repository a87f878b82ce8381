#!/usr/bin/env bash
# Gather every piece of GPU evidence in one run on a lent GPU machine (CONTRIBUTING.md, "GPU evidence").
#
#   bash scripts/gpu-evidence.sh [--out DIR] [--budget SECONDS] [--wheels DIR]
#   bash scripts/gpu-evidence.sh --check-wheels [--wheels DIR]   # install the wheels only (no GPU needed)
#
# 1. Without a CUDA device: one line, exit 2, at once.
# 2. Installs the wheels of .whl/ (make gpu-wheels: what the GPU machine lacks, pydantic first) into
#    a temporary site dir, and builds fusedsched._C in place against this machine's torch
#    (FUSEDSCHED_BUILD_NATIVE=1, for this GPU's arch).
# 3. Runs, most important first, each stage under what is left of the time budget (default 420 s,
#    so the whole run ends inside 8 minutes): pytest -m cuda tests; the graph-safe AdamW and SGD
#    steps, fused and foreach, eager, compiled and in a CUDA graph, against torch's fused ones at 1M
#    and 100M parameters (benchmarks/graphsafe_step.py, its table in run.log); the precision sweep
#    (scripts/gpu_precision_sweep.py); python -m fusedsched bench; the clock's paths
#    (benchmarks/clock_paths.py, its table in run.log); the demo on CUDA; pytest benchmarks/.
# 4. Writes summary.md (scripts/gpu_evidence_report.py) and prints its headline.
#
# Output, under $OUT (the device tool's folder, which brings back at most 8 files) or --out
# (default ./gpu-evidence): summary.md run.log env.json cuda-tests.xml precision.json bench.json
# demo.png benchmarks.json. Exit status: 0 every stage passed, 1 a stage failed or ran out of
# time, 2 bad usage or no CUDA device.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
OUT_DIR=${OUT:-$ROOT/gpu-evidence}
WHEELS=$ROOT/.whl
BUDGET=420
CHECK_WHEELS=0
COMMAND="bash scripts/gpu-evidence.sh${*:+ $*}"
USAGE="usage: bash scripts/gpu-evidence.sh [--out DIR] [--budget SECONDS] [--wheels DIR] [--check-wheels]"

die_usage() {
    echo "gpu-evidence: $1 ($USAGE)" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --out) [ $# -ge 2 ] || die_usage "--out needs a folder"; OUT_DIR=$2; shift 2 ;;
        --budget) [ $# -ge 2 ] || die_usage "--budget needs seconds"
                  [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge 60 ] || die_usage "--budget must be a whole number of seconds >= 60, got '$2'"
                  BUDGET=$2; shift 2 ;;
        --wheels) [ $# -ge 2 ] || die_usage "--wheels needs a folder"; WHEELS=$2; shift 2 ;;
        --check-wheels) CHECK_WHEELS=1; shift ;;
        -h|--help) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die_usage "unknown argument '$1'" ;;
    esac
done

START=$SECONDS
SITE="" STAGES=""
trap 'rm -rf "$SITE" "$STAGES"' EXIT

# The wheels the GPU machine lacks, into a temporary site dir first on PYTHONPATH.
install_wheels() {
    SITE=$(mktemp -d "${TMPDIR:-/tmp}/fusedsched-site.XXXXXX")
    shopt -s nullglob
    local wheels=("$WHEELS"/*.whl)
    shopt -u nullglob
    if [ ${#wheels[@]} -eq 0 ]; then
        echo "gpu-evidence: no wheels in $WHEELS (run 'make gpu-wheels' and carry .whl); using what $PYTHON has"
    elif ! "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" "${wheels[@]}"; then
        echo "gpu-evidence: installing ${#wheels[@]} wheels from $WHEELS with $PYTHON failed" >&2
        return 1
    fi
    export PYTHONPATH="$SITE:$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
    "$PYTHON" - "$SITE" "${#wheels[@]}" <<'EOF'
import importlib, importlib.metadata, sys
site, count = sys.argv[1], int(sys.argv[2])
found = []
for name in ("pydantic", "pydantic_core", "annotated_types", "typing_inspection", "typing_extensions"):
    try:
        module = importlib.import_module(name)
        version = importlib.metadata.version(name)
    except Exception as exc:
        sys.exit(f"gpu-evidence: {name} is not importable after installing the wheels: {exc}")
    where = "wheel" if str(getattr(module, "__file__", "")).startswith(site) else "machine"
    found.append(f"{name} {version} ({where})")
try:
    import torch  # noqa: F401
except ImportError:
    pass
else:
    import fusedsched
    found.append(f"fusedsched from {fusedsched.__file__.rsplit('/', 2)[0]}")
print(f"gpu-evidence: {count} wheels into {site}: {', '.join(found)}")
EOF
}

if [ "$CHECK_WHEELS" = 1 ]; then
    install_wheels
    exit $?
fi

# 1. CUDA or nothing.
if ! CUDA_LINE=$("$PYTHON" -c '
import sys
try:
    import torch
except Exception as exc:
    print(f"torch is not importable ({type(exc).__name__}: {exc})"); sys.exit(1)
if not torch.cuda.is_available():
    print(f"torch {torch.__version__} sees no CUDA device"); sys.exit(1)
print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}")' 2>/dev/null); then
    echo "gpu-evidence: no CUDA device here (${CUDA_LINE:-$PYTHON did not run}): nothing to measure; run this on a GPU machine" >&2
    exit 2
fi

mkdir -p "$OUT_DIR" || die_usage "cannot create $OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
STAGES=$(mktemp -d "${TMPDIR:-/tmp}/fusedsched-stages.XXXXXX")
LOG=$OUT_DIR/run.log
: > "$LOG"
export PYTHONUNBUFFERED=1
# The compiled Triton kernel, never the interpreter: a test module that sets TRITON_INTERPRET=1 with
# setdefault (for CPU runs) must not turn it on here.
export TRITON_INTERPRET=0
cd "$ROOT" || exit 2
echo "gpu-evidence: $CUDA_LINE; budget ${BUDGET} s; output in $OUT_DIR"

record() {  # NAME STATUS SECONDS EXIT NOTE
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$STAGES/stages.tsv"
    echo "gpu-evidence: $1 $2 ($3 s)${5:+: $5}"
}

# stage NAME CAP_SECONDS COMMAND...: run under min(CAP, time left - 20 s), log to run.log, record it.
stage() {
    local name=$1 cap=$2; shift 2
    local left=$((BUDGET - (SECONDS - START) - 20))
    local limit=$(( cap < left ? cap : left ))
    if [ "$limit" -lt 15 ]; then
        record "$name" skipped 0 - "out of time ($((SECONDS - START)) s of the $BUDGET s budget used)"
        return 0
    fi
    printf '\n===== %s: %s (limit %s s)\n' "$name" "$*" "$limit" >> "$LOG"
    local t0=$SECONDS rc
    timeout --kill-after=10 "$limit" "$@" > "$STAGES/$name.out" 2>&1
    rc=$?
    cat "$STAGES/$name.out" >> "$LOG"
    local status=ok note=""
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then status=timeout; note="stopped at its ${limit} s limit"
    elif [ "$rc" -ne 0 ]; then status=failed; note="exit status $rc"; fi
    record "$name" "$status" $((SECONDS - t0)) "$rc" "$note"
}

# 2. The wheels (into this shell's PYTHONPATH), the extension, the machine's description.
t0=$SECONDS
if install_wheels >> "$LOG" 2>&1; then
    record wheels ok $((SECONDS - t0)) 0 "$(tail -n 1 "$LOG" | sed 's/^gpu-evidence: //')"
else
    record wheels failed $((SECONDS - t0)) 1 "see run.log"
fi
stage build 240 env FUSEDSCHED_BUILD_NATIVE=1 "$PYTHON" setup.py build_ext --inplace --force
stage env 60 "$PYTHON" scripts/gpu_evidence_report.py env --json "$OUT_DIR/env.json" --command "$COMMAND"

# 3. The evidence, most important first.
stage cuda-tests 200 "$PYTHON" -m pytest -m cuda tests -q -rA -p no:cacheprovider \
    --continue-on-collection-errors --junitxml="$OUT_DIR/cuda-tests.xml"
stage optimizers 150 "$PYTHON" benchmarks/graphsafe_step.py --device cuda --sizes 1e6 1e8 --rounds 5
stage precision 120 "$PYTHON" scripts/gpu_precision_sweep.py --device cuda --json "$OUT_DIR/precision.json"
stage bench 150 "$PYTHON" -m fusedsched bench --device cuda --json "$OUT_DIR/bench.json"
stage clock 45 "$PYTHON" benchmarks/clock_paths.py --device cuda --rounds 5 --calls 2000
stage demo 90 "$PYTHON" -m fusedsched demo --device cuda --quiet -o "$OUT_DIR/demo.png"
stage benchmarks 150 "$PYTHON" -m pytest benchmarks/ -q -p no:cacheprovider --benchmark-json="$OUT_DIR/benchmarks.json" \
    --benchmark-columns=median,iqr,min,max,rounds,iterations --benchmark-sort=name

# 4. The summary (outside the budget's stages: it only reads files).
if ! timeout 30 "$PYTHON" scripts/gpu_evidence_report.py summary --out "$OUT_DIR" --stages "$STAGES/stages.tsv" \
        --seconds $((SECONDS - START)) 2>&1 | tee -a "$LOG"; then
    record summary failed 0 1 "see run.log"
fi
NOT_OK=$(awk -F'\t' '$2 != "ok"' "$STAGES/stages.tsv" | wc -l)
[ "$NOT_OK" -eq 0 ]
