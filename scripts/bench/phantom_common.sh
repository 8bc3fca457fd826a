# shellcheck shell=bash
# Shared by scripts/bench/phantom_benchmark.sh and phantom_benchmark_multilabel.sh:
# the cambox binary, and the three evaluations of one run (cambox's boxes with the
# threshold calibrated, a centre box and the whole image as baselines), each written
# beside the run (RUN-eval, RUN-eval-centre, RUN-eval-whole) for
# scripts/bench/phantom_tables.py.
#
# Meant to be sourced from the repository root:
#
#   phantom_build                          cargo build --release; sets bin
#   phantom_evals RUN TRUTH show|quiet [EVAL_ARGS...]
#                                          `show` prints the calibrated eval's report;
#                                          EVAL_ARGS go to all three evals

phantom_build() {
    cargo build --release --quiet
    bin=target/release/cambox
}

phantom_evals() {
    local run=$1 truth=$2 show=$3 b
    shift 3
    if [ "$show" = show ]; then
        "$bin" eval --run "$run" --truth "$truth" --out "$run-eval" "$@" --calibrate
    else
        "$bin" eval --run "$run" --truth "$truth" --out "$run-eval" "$@" --calibrate >/dev/null
    fi
    for b in centre whole; do
        "$bin" eval --run "$run" --truth "$truth" --out "$run-eval-$b" "$@" --baseline "$b" >/dev/null
    done
}
