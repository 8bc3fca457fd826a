#!/usr/bin/env bash
# cambox's job array (scripts/slurm/cambox-array.sbatch) under a real Slurm, with the
# faults a cluster brings. Run by `scripts/slurm/local-cluster.sh test`, which starts a
# one-node Slurm (2 CPUs) and sets SLURM_CONF; needs root on the node (it slows chosen
# tasks down with a cgroup CPU quota) and CAMBOX, the cambox binary.
#
# The study: 360 phantom PNGs in three folders plus two files that are not images, in 4
# shards; one plain run of the same images is the reference. One array of 4 tasks
# (--time=1, i.e. one minute) in which task 2 and task 3 run slowed down (a CPU quota)
# on their first attempt:
#   - tasks 0 and 1 run at the same time on the node, then 2 and 3: no shared state (each
#     shard holds exactly its own images; the count is recorded once);
#   - task 2 is requeued (`scontrol requeue`) once it has rows: its rerun resumes, no row
#     twice;
#   - task 3 reaches its time limit: Slurm sends SIGTERM (then SIGKILL after KillWait);
#     its shard is left resumable and merge refuses it (the test slows it down further
#     once it has rows, and lifts the quota when Slurm ends it);
#   - meanwhile task 0 is resubmitted alone the old README way (no count: the recorded
#     one is used, shard 0/4, not 0/1) and task 1 with a wrong count (refused, FAILED 2);
#   - a copy of task 3 holds the shard, a second copy is refused (FAILED 2), the first is
#     cancelled with scancel (CANCELLED);
#   - task 3 resubmitted alone (`sbatch --wait --array=3`) completes the shard;
#   - merge; the merged rows and artefacts are those of the plain run.
# Prints one PASS/FAIL line per check, the jobs as Slurm recorded them, timings, and a
# summary; exits 1 when a check failed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$(realpath "${CAMBOX:?set CAMBOX to the cambox binary}")
script="$here/cambox-array.sbatch"
cfg="$root/configs/phantoms.toml"
work=${ARRAY_TEST_DIR:-${CAMBOX_SLURM_DIR:-/tmp/cambox-slurm}/array-test}
unset SHARDS
T0=$SECONDS

passed=0
failed=0
failures=()
pass() {
  echo "PASS $1"
  passed=$((passed + 1))
}
fail() {
  echo "FAIL $1"
  failures+=("$1")
  shift
  local l
  for l in "$@"; do [ -n "$l" ] && echo "$l" | sed 's/^/     /'; done
  failed=$((failed + 1))
}
verdict() { # NAME DETAIL CONDITION...: PASS or FAIL (with DETAIL)
  local name=$1 detail=$2
  shift 2
  if "$@"; then pass "$name"; else fail "$name" "$detail"; fi
}
note() { printf '  [%3ds] %s\n' $((SECONDS - T0)) "$*"; }
run() { # prints the command (on stderr; paths shortened: $W is the work folder), runs it
  echo "  \$ $*" | sed -e "s#$root/##g" -e "s#$work/#\$W/#g" >&2
  "$@"
}

# --- Jobs as Slurm sees them.
# job_field ID FIELD: a field of `scontrol show job -o ID` (one task or job).
job_field() { scontrol show job -o "$1" 2>/dev/null | head -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
# array_line ARRAY TASK: the `scontrol show job -o` line of one task of an array.
array_line() { scontrol show job -o "$1" 2>/dev/null | grep -E "ArrayTaskId=$2( |$)" | head -n 1; }
array_field() { array_line "$1" "$2" | tr ' ' '\n' | sed -n "s/^$3=//p" | head -n 1; }
in_queue() { [ -n "$(squeue -h -j "$1" 2>/dev/null)" ]; }
# wait_gone JOB SECONDS: until squeue no longer lists JOB (all its tasks ended).
wait_gone() {
  local deadline=$((SECONDS + $2))
  while in_queue "$1"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 1
  done
}
wait_log() { # FILE PATTERN SECONDS
  local deadline=$((SECONDS + $3))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}
rows() { python3 -c 'import csv,sys; print(sum(1 for _ in csv.DictReader(open(sys.argv[1]))))' "$1/images.csv" 2>/dev/null || echo 0; }
manifest() { # DIR KEY: a top-level value of run.json (shard as I/N)
  python3 - "$1" "$2" <<'PY' 2>/dev/null || echo "?"
import json, sys
m = json.load(open(sys.argv[1] + "/run.json"))
v = m[sys.argv[2]]
if sys.argv[2] == "shard":
    v = "null" if v is None else "%d/%d" % (v["index"], v["count"])
print(v)
PY
}

# shard_ok DIR I N: DIR holds exactly the dataset's images of shard I/N (FNV-1a 64 of
# the relative path), each once. Prints what is wrong.
shard_ok() {
  python3 - "$1" "$2" "$3" "$work/in" <<'PY'
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
other = [p for p in paths if fnv(p) % n != i]
if other or len(set(paths)) != len(paths) or sorted(paths) != want:
    print(f"{d}: {len(paths)} rows, {len(set(paths))} distinct, {len(want)} wanted, {len(other)} of other shards")
    sys.exit(1)
PY
}

# same_results A B: images.csv (without `ms`) and boxes.csv rows, and every file under
# masks/, overlays/ and maps/, identical. Prints what differs.
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
ia, ib = table(os.path.join(a, "images.csv"), ("ms",)), table(os.path.join(b, "images.csv"), ("ms",))
if ia != ib:
    diffs.append(f"images.csv rows differ ({len(ia[1])} vs {len(ib[1])})")
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
print(f"{len(ia[1])} image rows, {len(table(os.path.join(a, 'boxes.csv'))[1])} box rows, {len(fa)} files")
PY
}

echo "== cambox job array under Slurm ($(sbatch --version 2>/dev/null), node $(sinfo -h -o '%N, %c CPUs' | head -n 1))"
sinfo -h -o '%t' | grep -q idle || {
  echo "FAIL no idle Slurm node (is the cluster started? SLURM_CONF=${SLURM_CONF:-unset})"
  exit 1
}

# --- The study.
rm -rf "$work"
mkdir -p "$work/in/bad" "$work/logs"
for s in a b c; do
  mkdir -p "$work/in/$s"
  for f in "$root"/data/phantoms/images/*.png; do cp "$f" "$work/in/$s/$s-$(basename "$f")"; done
done
echo "not an image" >"$work/in/bad/text.png"
head -c 300 "$root/data/phantoms/images/phantom_0000.png" >"$work/in/bad/truncated.png"
n_images=$(find "$work/in" -type f | wc -l)
study="$work/study"
N=4
expected() { # I: images of shard I/N
  python3 - "$work/in" "$1" "$N" <<'PY'
import os, sys
data, i, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def fnv(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) % 2**64
    return h
print(sum(1 for p, _, fs in os.walk(data) for f in fs if fnv(os.path.relpath(os.path.join(p, f), data)) % n == i))
PY
}
sizes=()
for i in 0 1 2 3; do sizes+=("$(expected "$i")"); done
note "dataset: $n_images images ($(IFS=/; echo "${sizes[*]}") in shards 0/1/2/3, two of them not images)"

# The slow-down: a cgroup CPU quota for the first attempt of chosen tasks (SLOW="TASK:US",
# US microseconds of CPU per 250 ms), so that a time limit, a requeue or a second copy
# find them mid-run. Test only: the sbatch script runs it as CAMBOX.
if [ -w /sys/fs/cgroup/cpu/cgroup.procs ] && [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
  cg_root=/sys/fs/cgroup/cpu
  cg_kind=v1
elif [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
  cg_root=/sys/fs/cgroup/cambox-array-test
  cg_kind=v2
  mkdir -p "$cg_root"
  echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
  echo +cpu >"$cg_root/cgroup.subtree_control" 2>/dev/null || true
else
  echo "FAIL no writable cgroup CPU controller (v1 /sys/fs/cgroup/cpu or v2): cannot slow tasks down"
  exit 1
fi
slow="$work/slow-cambox"
cat >"$slow" <<EOF
#!/usr/bin/env bash
# Test only (array_test.sh): cambox on a CPU quota for the first attempt of the array
# tasks listed in SLOW ("TASK:MICROSECONDS_PER_250MS ..."); plain cambox otherwise.
quota=
for t in \${SLOW:-}; do [ "\${t%%:*}" = "\${SLURM_ARRAY_TASK_ID:-}" ] && quota=\${t#*:}; done
if [ -n "\$quota" ] && [ "\${SLURM_RESTART_COUNT:-0}" = 0 ]; then
  cg=$cg_root/job-\$SLURM_JOB_ID
  mkdir -p "\$cg"
  if [ $cg_kind = v1 ]; then
    echo 250000 >"\$cg/cpu.cfs_period_us" && echo "\$quota" >"\$cg/cpu.cfs_quota_us"
  else
    echo "\$quota 250000" >"\$cg/cpu.max"
  fi
  echo \$\$ >"\$cg/cgroup.procs" && echo "slow-cambox: job \$SLURM_JOB_ID on \$quota us of CPU per 250 ms" >&2
fi
exec "$bin" "\$@"
EOF
chmod +x "$slow"
throttle() { # JOBID QUOTA_US PERIOD_US: a slowed job's quota; QUOTA_US max lifts it
  local cg="$cg_root/job-$1"
  [ -d "$cg" ] || return 0
  if [ $cg_kind = v2 ]; then
    echo "$2 $3" >"$cg/cpu.max"
  elif [ "$2" = max ]; then
    echo -1 >"$cg/cpu.cfs_quota_us"
  else
    echo "$3" >"$cg/cpu.cfs_period_us" && echo "$2" >"$cg/cpu.cfs_quota_us"
  fi
}
cleanup_cgroups() {
  local d
  for d in "$cg_root"/job-*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  [ $cg_kind = v2 ] && rmdir "$cg_root" 2>/dev/null
  return 0
}
trap cleanup_cgroups EXIT

# --- The reference: one plain run.
t=$SECONDS
"$bin" run -q -c "$cfg" --threads 2 -o "$work/plain" "$work/in" 2>"$work/plain.log"
s=$?
verdict "plain run (reference): exit 3 (two images are not images), $(rows "$work/plain") rows" "$(tail -n 3 "$work/plain.log")" test "$s" = 3
note "plain run: $((SECONDS - t))s"

# Every submission: one CPU, 500 MB, a one-minute limit (Slurm's smallest), logs in $W/logs.
opts=(--parsable --job-name=cambox-test --cpus-per-task=1 --mem=500M --time=1)
log_of() { echo "$work/logs/$1.log"; }

# --- The array.
echo "== the array: 4 shards, task 2 requeued, task 3 at its time limit"
t_array=$SECONDS
A=$(run sbatch "${opts[@]}" --array=0-3 --output="$work/logs/%A_%a.log" \
  --export="ALL,CAMBOX=$slow,SLOW=2:5000 3:1000" "$script" "$cfg" "$work/in" "$study" "$N")
[ -n "$A" ] || {
  fail "sbatch --array=0-3 submitted nothing"
  exit 1
}
note "array job $A submitted"
requeued=""
slowed3=""
freed3=""
extra_done=""
max_running=0
nodes_seen=""
last_view=""
overlap_pairs=""
deadline=$((SECONDS + 240))
while in_queue "$A" && [ $SECONDS -lt $deadline ]; do
  view=$(squeue -h -j "$A" -o '%i %T %N' | sort | tr '\n' ';')
  if [ "$view" != "$last_view" ]; then
    note "squeue: ${view%;}"
    last_view=$view
  fi
  running=$(squeue -h -j "$A" -t RUNNING -o '%i %N' | sort)
  nrun=$(grep -c . <<<"$running")
  if [ "$nrun" -gt "$max_running" ]; then
    max_running=$nrun
    nodes_seen=$(awk '{print $2}' <<<"$running" | sort -u | paste -sd ' ')
    overlap_pairs=$(awk '{print $1}' <<<"$running" | paste -sd ' ')
  fi
  # Task 2: requeue it once it has rows on disk (its first, slowed attempt).
  if [ -z "$requeued" ] && [ "$(array_field "$A" 2 JobState)" = RUNNING ] && [ "$(rows "$study/shard-2")" -ge 16 ]; then
    rows_before_requeue=$(rows "$study/shard-2")
    run scontrol requeue "${A}_2"
    requeued=yes
    note "task 2 requeued with $rows_before_requeue rows recorded"
  fi
  # Task 3: once it has rows on disk, slow it down further (0.1% of a CPU) so that it is
  # still running at its time limit on a faster machine too; when Slurm ends it (SIGTERM,
  # COMPLETING), lift the quota so that cambox handles the signal at its normal speed.
  st3=$(squeue -h -j "${A}_3" -o '%T' 2>/dev/null)
  if [ -z "$slowed3" ] && [ "$st3" = RUNNING ] && [ "$(rows "$study/shard-3")" -ge 16 ]; then
    throttle "$(array_field "$A" 3 JobId)" 1000 1000000
    slowed3=yes
    note "task 3 has $(rows "$study/shard-3") rows: slowed to 0.1% of a CPU until its time limit"
  fi
  if [ -n "$slowed3" ] && [ -z "$freed3" ] && [ "$st3" != RUNNING ]; then
    throttle "$(array_field "$A" 3 JobId)" max 250000
    freed3=yes
    note "task 3 ${st3:-ended}: CPU quota lifted"
  fi
  # Once task 2 is back and done, while task 3 still runs: task 0 alone the old way (no
  # count), task 1 alone with a wrong count.
  if [ -z "$extra_done" ] && [ -n "$requeued" ] && [ "$(array_field "$A" 2 JobState)" = COMPLETED ]; then
    B=$(run sbatch "${opts[@]}" --array=0 --output="$work/logs/%A_%a.log" "$script" "$cfg" "$work/in" "$study")
    C=$(run sbatch "${opts[@]}" --array=1 --output="$work/logs/%A_%a.log" "$script" "$cfg" "$work/in" "$study" 8)
    extra_done=yes
    note "task 0 resubmitted alone without a count: job $B; task 1 with count 8: job $C"
  fi
  sleep 1
done
if in_queue "$A"; then
  fail "the array did not end within 240 s" "$(squeue -j "$A")"
fi
[ -n "$extra_done" ] && { wait_gone "$B" 60; wait_gone "$C" 60; }
note "array ended: $((SECONDS - t_array))s"

echo "== checks"
# Tasks 0 and 1.
for i in 0 1; do
  st=$(array_field "$A" $i JobState)
  ec=$(array_field "$A" $i ExitCode)
  verdict "task $i: $st $ec, shard $(manifest "$study/shard-$i" shard) with exactly its $(expected $i) images" \
    "$(shard_ok "$study/shard-$i" $i $N)" \
    bash -c '[ "$0" = COMPLETED ] && [ "$1" = 0:0 ] && [ "$2" = "$3/4" ]' "$st" "$ec" "$(manifest "$study/shard-$i" shard)" "$i"
done
verdict "shards with bad images: COMPLETED with exit 0:0 as Slurm sees it (cambox exit 3 in the log)" \
  "$(grep -l 'cambox exit 3' "$work"/logs/"${A}"_*.log)" \
  bash -c 'grep -q "some images failed (cambox exit 3" "$0"/logs/"$1"_*.log' "$work" "$A"
verdict "two tasks of the array ran at once on one node (at most $max_running running: $overlap_pairs on $nodes_seen)" "" \
  test "$max_running" -ge 2 -a "$(wc -w <<<"$nodes_seen")" = 1
verdict "  ... with no shared state: the count recorded once (shards.count = 4, no temporary file), one lock per shard" \
  "$(ls -la "$study")" \
  bash -c '[ "$(cat "$0/shards.count")" = 4 ] && [ -z "$(find "$0" -maxdepth 1 -name ".shards.count.*")" ] && [ "$(find "$0" -maxdepth 1 -name ".shard-*.lock" | wc -l)" = 4 ]' "$study"

# Task 2: requeued.
st=$(array_field "$A" 2 JobState)
restarts=$(array_field "$A" 2 Restarts)
l2=$(log_of "${A}_2")
verdict "task 2 requeued (scontrol requeue) with ${rows_before_requeue:-?} rows: Restarts=$restarts, $st" "$(tail -n 5 "$l2")" \
  bash -c '[ -n "$0" ] && [ "$1" = 1 ] && [ "$2" = COMPLETED ]' "$requeued" "$restarts" "$st"
verdict "  ... Slurm sent SIGTERM (JOB REQUEUE in the log), cambox stopped as interrupted (exit 130)" "$(cat "$l2")" \
  bash -c 'grep -q "DUE TO JOB REQUEUE" "$0" && grep -q "interrupted (exit 130)" "$0"' "$l2"
verdict "  ... the rerun (restart 1) resumed: resumed_rows $(manifest "$study/shard-2" resumed_rows) >= ${rows_before_requeue:-?}, state $(manifest "$study/shard-2" state)" "$(cat "$l2")" \
  bash -c 'grep -q "restart 1)" "$0" && [ "$1" -ge "${2:-1}" ] && [ "$3" = completed ]' "$l2" "$(manifest "$study/shard-2" resumed_rows)" "${rows_before_requeue:-1}" "$(manifest "$study/shard-2" state)"
verdict "  ... no row twice: shard-2 holds each of its $(expected 2) images once" "$(shard_ok "$study/shard-2" 2 $N)" \
  shard_ok "$study/shard-2" 2 $N

# Task 3: the time limit.
st=$(array_field "$A" 3 JobState)
l3=$(log_of "${A}_3")
rows3=$(rows "$study/shard-3")
state3=$(manifest "$study/shard-3" state)
run_time=$(array_field "$A" 3 RunTime)
verdict "task 3 at its time limit (--time=1): $st $(array_field "$A" 3 ExitCode) after $run_time" "$(tail -n 5 "$l3")" \
  bash -c '[ "$0" = TIMEOUT ] && grep -q "DUE TO TIME LIMIT" "$1"' "$st" "$l3"
verdict "  ... cambox got SIGTERM and left the shard resumable: run.json $state3, $rows3 of $(expected 3) rows" "$(tail -n 5 "$l3")" \
  bash -c '{ [ "$0" = interrupted ] || [ "$0" = running ]; } && [ "$1" -gt 0 ] && [ "$1" -lt "$2" ]' "$state3" "$rows3" "$(expected 3)"
grep -q "interrupted (exit 130)" "$l3" && note "task 3: cambox finished its images in flight and exited 130 before KillWait" ||
  note "task 3: cambox did not report exit 130 (killed after KillWait?): $(tail -n 2 "$l3" | tr '\n' ' ')"
"$bin" merge "$study"/shard-* --out "$work/merged-early" >"$work/merge-early.log" 2>&1
s=$?
verdict "  ... merge refuses the incomplete shard (exit $s)" "$(cat "$work/merge-early.log")" \
  bash -c '[ "$0" != 0 ] && grep -q "not complete" "$1"' "$s" "$work/merge-early.log"

# Task 0 resubmitted the old README way, task 1 with a wrong count.
if [ -n "$extra_done" ]; then
  st=$(array_field "$B" 0 JobState)
  verdict "task 0 resubmitted alone without a count (sbatch --array=0 ... $study): $st, shard $(manifest "$study/shard-0" shard), still $(rows "$study/shard-0") rows (not the whole dataset as 0/1)" \
    "$(cat "$(log_of "${B}_0")")" \
    bash -c '[ "$0" = COMPLETED ] && [ "$1" = 0/4 ] && grep -q "shard 0/4 into" "$2"' "$st" "$(manifest "$study/shard-0" shard)" "$(log_of "${B}_0")"
  verdict "  ... shard-0 still holds exactly its images" "$(shard_ok "$study/shard-0" 0 $N)" shard_ok "$study/shard-0" 0 $N
  st=$(array_field "$C" 1 JobState)
  ec=$(array_field "$C" 1 ExitCode)
  verdict "task 1 resubmitted with a wrong count (8; the study has 4): $st $ec, refused" "$(cat "$(log_of "${C}_1")")" \
    bash -c '[ "$0" = FAILED ] && [ "$1" = 2:0 ] && grep -q "study of 4 shards" "$2"' "$st" "$ec" "$(log_of "${C}_1")"
else
  fail "task 0 / task 1 resubmissions were never made (task 2 did not complete after its requeue)"
fi

# --- One copy of a shard at a time; scancel.
echo "== a second copy of task 3 while one runs; scancel; recovery"
t=$SECONDS
L1=$(run sbatch "${opts[@]}" --array=3 --output="$work/logs/%A_%a.log" \
  --export="ALL,CAMBOX=$slow,SLOW=3:1000" "$script" "$cfg" "$work/in" "$study" "$N")
wait_log "$(log_of "${L1}_3")" "shard 3/4 into" 60 || fail "the first copy of task 3 never started" "$(squeue)"
L2=$(run sbatch "${opts[@]}" --array=3 --output="$work/logs/%A_%a.log" "$script" "$cfg" "$work/in" "$study" "$N")
wait_gone "$L2" 60
st=$(array_field "$L2" 3 JobState)
ec=$(array_field "$L2" 3 ExitCode)
verdict "a second copy of task 3 while the first runs: $st $ec, refused (lock)" "$(cat "$(log_of "${L2}_3")")" \
  bash -c '[ "$0" = FAILED ] && [ "$1" = 2:0 ] && grep -q "being processed by another task" "$2"' "$st" "$ec" "$(log_of "${L2}_3")"
throttle "$(array_field "$L1" 3 JobId)" max 250000
run scancel "$L1"
wait_gone "$L1" 60
st=$(array_field "$L1" 3 JobState)
ec=$(array_field "$L1" 3 ExitCode)
verdict "the first copy cancelled (scancel): $st $ec (interrupted), shard 3 $(manifest "$study/shard-3" state)" "$(tail -n 5 "$(log_of "${L1}_3")")" \
  bash -c '[ "$0" = CANCELLED ] && [ "$1" = 130:0 ] && [ "$2" != completed ]' "$st" "$ec" "$(manifest "$study/shard-3" state)"

# Recovery: task 3 alone, waiting for it with sbatch --wait.
rows_before=$(rows "$study/shard-3")
R=$(run sbatch "${opts[@]}" --wait --array=3 --output="$work/logs/%A_%a.log" "$script" "$cfg" "$work/in" "$study" "$N")
s=$?
R=${R%%$'\n'*}
st=$(array_field "$R" 3 JobState)
verdict "task 3 resubmitted alone (sbatch --wait --array=3): exit $s, $st, shard $(manifest "$study/shard-3" shard) $(manifest "$study/shard-3" state), resumed from $(manifest "$study/shard-3" resumed_rows) rows" \
  "$(cat "$(log_of "${R}_3")")" \
  bash -c '[ "$0" = 0 ] && [ "$1" = COMPLETED ] && [ "$2" = 3/4 ] && [ "$3" = completed ] && [ "$4" = "$5" ]' \
  "$s" "$st" "$(manifest "$study/shard-3" shard)" "$(manifest "$study/shard-3" state)" "$(manifest "$study/shard-3" resumed_rows)" "$rows_before"
verdict "  ... no row twice: shard-3 holds each of its $(expected 3) images once" "$(shard_ok "$study/shard-3" 3 $N)" shard_ok "$study/shard-3" 3 $N
note "copies, scancel and recovery: $((SECONDS - t))s"

# --- Merge and compare with the plain run.
echo "== merge"
run "$bin" merge "$study"/shard-0 "$study"/shard-1 "$study"/shard-2 "$study"/shard-3 --out "$work/merged" 2>"$work/merge.log"
s=$?
verdict "cambox merge of the 4 shards: exit $s" "$(cat "$work/merge.log")" test "$s" = 0
cmp=$(same_results "$work/plain" "$work/merged" 2>&1)
s=$?
verdict "merged = plain run: identical rows and artefacts ($cmp)" "$cmp" test "$s" = 0
"$bin" run -q -c "$cfg" --threads 2 --shard 0/8 -o "$work/eight/shard-0" "$work/in" 2>/dev/null
"$bin" merge "$study"/shard-[0-3] "$work/eight/shard-0" --out "$work/merged-mixed" >"$work/merge-mixed.log" 2>&1
s=$?
verdict "merge refuses a shard of another count (0/8 among 4): exit $s" "$(cat "$work/merge-mixed.log")" \
  bash -c '[ "$0" != 0 ] && grep -q "is shard 0/8, but" "$1"' "$s" "$work/merge-mixed.log"

# --- As Slurm recorded it.
echo "== the jobs as Slurm recorded them (scontrol show job)"
printf '  %-10s %-6s %-10s %-8s %-8s %s\n' JOB TASK STATE EXIT RESTARTS RUNTIME
for j in "$A" "${B:-}" "${C:-}" "$L1" "$L2" "$R"; do
  [ -n "$j" ] || continue
  scontrol show job -o "$j" 2>/dev/null | while read -r line; do
    f() { tr ' ' '\n' <<<"$line" | sed -n "s/^$1=//p" | head -n 1; }
    printf '  %-10s %-6s %-10s %-8s %-8s %s\n' "$(f ArrayJobId)" "$(f ArrayTaskId)" "$(f JobState)" "$(f ExitCode)" "$(f Restarts)" "$(f RunTime)"
  done
done
echo "== sacct --completion (no slurmdbd: the job completion log; array tasks show as plain job ids)"
sacct --completion -o JobID,JobName,State,ExitCode,Start,End 2>/dev/null | sed 's/^/  /'
comp=$(sacct --completion -n -o State 2>/dev/null | tr -s ' \n' ' ')
verdict "sacct --completion lists COMPLETED, TIMEOUT, FAILED and CANCELLED jobs" "$comp" \
  bash -c 'for s in COMPLETED TIMEOUT FAILED CANCELLED; do grep -qw "$s" <<<"$0" || exit 1; done' "$comp"

echo
echo "== array test: $((SECONDS - T0))s (work folder $work)"
echo "slurm-array: $passed passed, $failed failed"
for f in "${failures[@]}"; do echo "   failed: $f"; done
if [ "$failed" -eq 0 ]; then
  # Keep the jobs' logs (small); the images and results go.
  t=$SECONDS
  rm -rf "$work/in" "$work/study" "$work/plain" "$work/merged" "$work/eight" "$work"/merged-*
  echo "   (images and results removed in $((SECONDS - t))s; the jobs' logs stay in $work/logs)"
  exit 0
fi
exit 1
