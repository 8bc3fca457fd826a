#!/usr/bin/env bash
# Tests the logic of scripts/slurm/cambox-array.sbatch without Slurm: the script is run
# with bash in a fake array environment (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT,
# SLURM_JOB_ID, ...), with CAMBOX pointing at a real cambox binary (or, for the exit
# statuses and signals, at a stand-in).
#
#   scripts/slurm/sbatch_logic_test.sh CAMBOX_BINARY
#
# Checks: the shard count comes from the study (argument, SHARDS, or OUT/shards.count),
# not from SLURM_ARRAY_TASK_COUNT, so task 7 or task 0 resubmitted alone is shard 7/N or
# 0/N (the old script made it 7/1, refused, or 0/1, the whole dataset into shard-0); a
# different count is refused; tasks outside 0..N-1, a missing count, and a shard folder of
# another count are refused; the merged shards equal one plain run; cambox's exit 3 is
# mapped to 0 and 1 and 130 are passed through; a SIGTERM sent to the script alone (as
# `scancel --batch`) reaches cambox; one shard is never run twice at once. Prints one
# PASS/FAIL line per check; exits 1 when any failed. Needs bash, flock and python3.
set -uo pipefail

bin=${1:?usage: sbatch_logic_test.sh CAMBOX_BINARY}
bin=$(realpath "$bin")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
script="$here/cambox-array.sbatch"
cfg="$root/configs/phantoms.toml"
unset SHARDS SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_JOB_ID SLURM_JOB_ID \
  SLURM_RESTART_COUNT SLURM_CPUS_PER_TASK CAMBOX

work=$(mktemp -d "${TMPDIR:-/tmp}/cambox-sbatch-logic.XXXXXX")
trap 'rm -rf "$work"' EXIT
t0=$(date +%s%N)

passed=0
failed=0
pass() {
  echo "PASS $1"
  passed=$((passed + 1))
}
fail() {
  echo "FAIL $1"
  shift
  for l in "$@"; do echo "     $l"; done
  failed=$((failed + 1))
}
check() { # NAME CONDITION-COMMAND...
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name" "$(tail -n 5 "$work/last.log" 2>/dev/null)"; fi
}

# A small dataset: 48 phantoms in two folders, and two files that are not images.
data="$work/in"
mkdir -p "$data/p" "$data/q" "$data/bad"
for f in "$root"/data/phantoms/images/phantom_00[0-2]?.png; do
  cp "$f" "$data/p/"
  cp "$f" "$data/q/q-$(basename "$f")"
done
echo "not an image" >"$data/bad/text.png"
head -c 300 "$root/data/phantoms/images/phantom_0000.png" >"$data/bad/truncated.png"

# task ID ARRAY_COUNT OUT [COUNT]: runs the script as Slurm would run task ID of an array
# of ARRAY_COUNT tasks; its output goes to $work/last.log (and $work/task-ID.log).
task() {
  local id=$1 n=$2 out=$3
  shift 3
  (
    export SLURM_ARRAY_TASK_ID=$id SLURM_ARRAY_TASK_COUNT=$n SLURM_ARRAY_JOB_ID=4200
    export SLURM_JOB_ID=$((4200 + id + 1)) SLURM_CPUS_PER_TASK=1 CAMBOX=${FAKE:-$bin}
    exec bash "$script" "$cfg" "$data" "$out" "$@"
  ) >"$work/task-$id.log" 2>&1
  local s=$?
  cp "$work/task-$id.log" "$work/last.log"
  return $s
}
status_of() { # CMD...: prints the exit status
  "$@"
  echo $?
}
shard_of_run() { # DIR: prints the run's shard as I/N (or null)
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1]+"/run.json"))["shard"]; print("null" if s is None else "%d/%d" % (s["index"], s["count"]))' "$1"
}
rows() { python3 -c 'import csv,sys; print(sum(1 for _ in csv.DictReader(open(sys.argv[1]))))' "$1/images.csv"; }
log_has() { grep -q -- "$1" "$work/last.log"; }

# shard_ok DIR I N: every row of DIR is an image of shard I/N (FNV-1a 64 of its path),
# none twice, and every such image of the dataset is there.
shard_ok() {
  python3 - "$1" "$2" "$3" "$data" <<'PY'
import csv, os, sys
d, i, n, data = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def fnv(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) % 2**64
    return h
paths = [r["path"] for r in csv.DictReader(open(os.path.join(d, "images.csv")))]
every = sorted(os.path.relpath(os.path.join(p, f), data) for p, _, fs in os.walk(data) for f in fs)
want = sorted(p for p in every if fnv(p) % n == i)
bad = [p for p in paths if fnv(p) % n != i]
if bad or len(set(paths)) != len(paths) or sorted(paths) != want:
    print(f"shard {i}/{n} in {d}: {len(paths)} rows ({len(set(paths))} distinct), {len(want)} wanted, {len(bad)} of another shard")
    sys.exit(1)
PY
}

# same_results A B: rows (images.csv without its `ms` column, boxes.csv; sorted) and every
# file under masks/, overlays/ and maps/ identical.
same_results() {
  python3 - "$1" "$2" <<'PY'
import csv, os, sys
a, b = sys.argv[1], sys.argv[2]
def table(p, drop=()):
    rows = list(csv.reader(open(p, newline="")))
    keep = [i for i, h in enumerate(rows[0]) if h not in drop]
    return [rows[0][i] for i in keep], sorted([r[i] for i in keep] for r in rows[1:])
def files(d):
    out = {}
    for sub in ("masks", "overlays", "maps"):
        for p, _, fs in os.walk(os.path.join(d, sub)):
            for f in fs:
                full = os.path.join(p, f)
                out[os.path.relpath(full, d)] = open(full, "rb").read()
    return out
diffs = []
if table(os.path.join(a, "images.csv"), ("ms",)) != table(os.path.join(b, "images.csv"), ("ms",)):
    diffs.append("images.csv rows differ")
if table(os.path.join(a, "boxes.csv")) != table(os.path.join(b, "boxes.csv")):
    diffs.append("boxes.csv rows differ")
fa, fb = files(a), files(b)
if fa.keys() != fb.keys():
    diffs.append(f"artefact lists differ: {len(fa)} vs {len(fb)} files")
elif any(fa[k] != fb[k] for k in fa):
    diffs.append("artefact contents differ")
if diffs:
    print("; ".join(diffs))
    sys.exit(1)
PY
}

# --- The reference: one plain run.
"$bin" run -q -c "$cfg" --threads 2 -o "$work/plain" "$data" 2>"$work/plain.log"
s=$?
if [ "$s" -eq 3 ]; then pass "plain run: exit 3 (two bad images), $(rows "$work/plain") rows"; else fail "plain run: exit $s, expected 3" "$(tail -n 3 "$work/plain.log")"; fi

# --- A study of 8 shards: the 8 tasks start at once (the count is recorded by one of them).
study="$work/study"
pids=()
for i in 0 1 2 3 4 5 6 7; do
  task "$i" 8 "$study" 8 &
  pids+=($!)
done
all_zero=true
for p in "${pids[@]}"; do wait "$p" || all_zero=false; done
if $all_zero; then pass "8 tasks started at once: all exit 0 (the shards with a bad image too)"; else fail "8 tasks started at once: all exit 0" "$(cat "$work"/task-?.log | grep -i 'refused\|failed' | head -5)"; fi
check "the study's count is recorded once: shards.count = 8, no temporary file left" \
  test "$(cat "$study/shards.count" 2>/dev/null)" = 8 -a -z "$(find "$study" -maxdepth 1 -name '.shards.count.*')"
ok=true
for i in 0 1 2 3 4 5 6 7; do
  [ "$(shard_of_run "$study/shard-$i")" = "$i/8" ] && shard_ok "$study/shard-$i" "$i" 8 || ok=false
done
check "each task I ran shard I/8, exactly the images of that shard" $ok
mapped=$(grep -l "some images failed (cambox exit 3" "$work"/task-?.log | wc -l)
check "a shard with bad images: cambox exit 3 logged, task exit 0 ($mapped shard(s))" test "$mapped" -ge 1

# --- The old bug: a task re-submitted alone (an array of one task).
rm -rf "$study/shard-7"
task 7 1 "$study" 8
s=$?
check "task 7 resubmitted alone (--array=7, SLURM_ARRAY_TASK_COUNT=1) with the count: exit 0, shard 7/8 (not 7/1)" \
  test "$s" = 0 -a "$(shard_of_run "$study/shard-7" 2>/dev/null)" = 7/8
check "  ... and shard-7 holds exactly the images of shard 7/8" shard_ok "$study/shard-7" 7 8
before=$(rows "$study/shard-0")
task 0 1 "$study"
s=$?
check "task 0 resubmitted alone without a count: the recorded 8 is used, shard 0/8 (not 0/1, the whole dataset)" \
  test "$s" = 0 -a "$(shard_of_run "$study/shard-0")" = 0/8 -a "$(rows "$study/shard-0")" = "$before"
log_has "shard 0/8" && pass "  ... its log names shard 0/8" || fail "  ... its log names shard 0/8" "$(cat "$work/last.log")"
SHARDS=8 task 0 1 "$study"
s=$?
check "task 0 resubmitted alone with SHARDS=8: exit 0, shard 0/8, nothing added" \
  test "$s" = 0 -a "$(shard_of_run "$study/shard-0")" = 0/8 -a "$(rows "$study/shard-0")" = "$before"
check "the shards merge into the plain run's rows and artefacts" \
  bash -c '"$0" merge "$1"/shard-* --out "$2" 2>"$3"' "$bin" "$study" "$work/merged" "$work/last.log"
check "  ... identical rows and files" same_results "$work/plain" "$work/merged"

# --- Refusals (exit 2, nothing run).
touch "$work/mark"
task 3 1 "$study" 4
s=$?
check "a different count (argument 4; the study has 8): exit 2" test "$s" = 2
check "  ... with a message naming both counts" log_has "study of 8 shards.*says 4"
SHARDS=4 task 3 1 "$study"
check "a different count (SHARDS=4): exit 2" test $? = 2
SHARDS=4 task 3 1 "$study" 8
check "argument 8 and SHARDS=4 disagree: exit 2" test $? = 2
check "  ... and no refused task touched the study" test -z "$(find "$study" -newer "$work/mark")"
task 8 9 "$study"
check "task 8 of a study of 8 shards: exit 2, outside 0-7" bash -c 'test "$0" = 2 && grep -q "outside the study" "$1"' $? "$work/last.log"
task 0 1 "$work/fresh"
s=$?
check "a new study without a count: exit 2, asks for it" bash -c 'test "$0" = 2 && grep -q "no recorded shard count" "$1" && [ ! -e "$2/shard-0" ]' $s "$work/last.log" "$work/fresh"
for bad in 0 x -3 2.5; do
  task 0 1 "$work/fresh" "$bad"
  s=$?
  [ "$s" = 2 ] || break
done
check "counts 0, x, -3, 2.5 are refused (exit 2)" test "$s" = 2
(
  unset SLURM_ARRAY_TASK_ID
  CAMBOX=$bin bash "$script" "$cfg" "$data" "$work/fresh" 4
) >"$work/last.log" 2>&1
check "not an array task (no SLURM_ARRAY_TASK_ID): exit 2" test $? = 2

# A shard folder of another count (the old script's 0/1, say) is not resumed into.
other="$work/other"
"$bin" run -q -c "$cfg" --threads 2 --shard 0/1 -o "$other/shard-0" "$data" 2>/dev/null
echo 4 >"$other/shards.count"
task 0 4 "$other" 4
s=$?
check "a shard folder holding shard 0/1 in a study of 4: exit 2, not resumed" bash -c 'test "$0" = 2 && grep -q "holds {\"index\":0,\"count\":1}" "$1"' $s "$work/last.log"

# merge refuses shards of different counts.
"$bin" run -q -c "$cfg" --threads 2 --shard 1/4 -o "$work/four/shard-1" "$data" 2>/dev/null
"$bin" merge "$study"/shard-0 "$work/four/shard-1" --out "$work/mixed" >"$work/last.log" 2>&1
s=$?
check "merge refuses shards of different counts (0/8 with 1/4): exit $s" bash -c 'test "$0" != 0 && grep -q "is shard 1/4, but" "$1"' $s "$work/last.log"

# --- One shard at a time: a second copy of a task is refused while the first runs.
exec 8>>"$study/.shard-2.lock"
flock 8
task 2 8 "$study" 8 8>&-
s=$?
check "shard 2 locked by a running copy: a second copy exits 2" bash -c 'test "$0" = 2 && grep -q "being processed by another task" "$1"' $s "$work/last.log"
flock -u 8
exec 8>&-
task 2 8 "$study" 8
check "  ... and runs once the first copy is gone" test $? = 0

# --- Exit statuses and signals, with a stand-in for cambox.
fake="$work/fake-cambox"
cat >"$fake" <<'SH'
#!/usr/bin/env bash
# Stand-in for cambox: records its arguments; FAKE_EXIT=N exits N; FAKE_EXIT=wait waits
# for SIGTERM, then exits 130 as cambox does.
echo "$*" >"$FAKE_DIR/args"
if [ "$FAKE_EXIT" = wait ]; then
  trap 'echo TERM >"$FAKE_DIR/got"; exit 130' TERM
  echo $$ >"$FAKE_DIR/started"
  for _ in $(seq 1 200); do sleep 0.05; done # 10 s at most
  exit 99
fi
exit "$FAKE_EXIT"
SH
chmod +x "$fake"
export FAKE_DIR=$work
for pair in 0:0 3:0 1:1 130:130 143:130 2:2; do
  FAKE_EXIT=${pair%:*} FAKE=$fake task 5 8 "$study" 8
  s=$?
  [ "$s" = "${pair#*:}" ] || break
done
check "cambox exit 0, 3, 1, 130, 143 (SIGTERM while starting), 2 -> task exit 0, 0, 1, 130, 130, 2 (last: cambox ${pair%:*} -> $s)" test "$s" = "${pair#*:}"
check "cambox gets --shard 5/8 --threads \$SLURM_CPUS_PER_TASK and OUT/shard-5" \
  grep -q -- "--out $study/shard-5 --shard 5/8 --threads 1 $data" "$work/args"
rm -f "$work/started" "$work/got"
(
  export SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_COUNT=1 SLURM_JOB_ID=4300 SLURM_CPUS_PER_TASK=1
  export CAMBOX=$fake FAKE_EXIT=wait
  exec bash "$script" "$cfg" "$data" "$study" 8
) >"$work/last.log" 2>&1 &
sp=$!
for _ in $(seq 1 100); do [ -e "$work/started" ] && break; sleep 0.05; done
kill -TERM "$sp"
wait "$sp"
s=$?
kill "$(cat "$work/started" 2>/dev/null)" 2>/dev/null # a stand-in the script left behind
check "SIGTERM to the batch script alone (scancel --batch): cambox gets it, task exits 130" \
  bash -c 'test "$0" = 130 && test -e "$1/got"' $s "$work"
check "  ... and the log says how to resume" log_has "interrupted (exit 130): resubmit this task"

ms=$((($(date +%s%N) - t0) / 1000000))
echo
printf 'sbatch logic test: %d.%d s\n' $((ms / 1000)) $((ms % 1000 / 100))
printf 'sbatch-logic: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
