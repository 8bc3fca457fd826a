# shellcheck shell=bash
# Shared helper for the scripts under scripts/ that run Python: one throw-away
# virtualenv per script under target/venvs/NAME (git-ignored), with pinned
# packages from PyPI, and pip only called when a pin is not already satisfied.
#
# Meant to be sourced, not run:
#
#   . "$ROOT/scripts/lib/venv.sh"
#   venv_ensure NAME SPEC... [--no-deps SPEC...]
#   "$VENV_PY" scripts/something.py
#
#   NAME       venv directory: <repo>/target/venvs/NAME
#   SPEC       exact pin DIST==VERSION, e.g. numpy==2.4.6
#   --no-deps  the specs after it are installed with `pip install --no-deps`,
#              in a second pip call after the others (packages whose declared
#              dependencies must not be pulled in)
#
# venv_ensure
#   1. creates target/venvs/NAME with `${PYTHON:-python3} -m venv` when its
#      bin/python is missing;
#   2. asks the venv's importlib.metadata whether every pinned distribution is
#      installed at exactly the pinned version. Names are compared normalised
#      (PEP 503: case and runs of - _ . ignored, so opencv-python-headless,
#      pylibjpeg-libjpeg, tensorflow-cpu / tensorflow_cpu all match), and a
#      +local suffix on the installed version (torch's +cu132) is ignored unless
#      the pin has one itself;
#   3. only if some pin is missing or at another version, runs
#      `pip install --quiet --disable-pip-version-check` on the specs, then
#      the same with --no-deps on the --no-deps specs, and checks again.
# On return VENV_DIR is the venv's absolute path and VENV_PY its python.
# Messages go to stderr; it returns non-zero on failure (so `set -e` stops the
# caller) and works under `set -euo pipefail`.

# Repo root, resolved once when sourced (this file is scripts/lib/venv.sh).
VENV_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Exit status 0 when every DIST==VERSION argument is installed in the venv of
# python $1, else 1 with one line per unsatisfied pin on stderr.
_venv_pins_satisfied() {
    local py="$1"
    shift
    "$py" - "$@" <<'PY'
import re
import sys
from importlib.metadata import distributions


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


have = {}
for dist in distributions():  # sys.path order: the first one found wins, as for import
    name = dist.metadata["Name"]
    if name:
        have.setdefault(norm(name), dist.version)

bad = []
for spec in sys.argv[1:]:
    name, want = spec.split("==", 1)
    got = have.get(norm(name))
    if got is None:
        bad.append(f"{name}: not installed (want {want})")
    elif (got if "+" in want else got.split("+", 1)[0]) != want:
        bad.append(f"{name}: {got} installed (want {want})")
for line in bad:
    print(f"  {line}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

venv_ensure() {
    if [ $# -lt 1 ] || [ -z "$1" ] || [[ $1 == -* ]]; then
        echo "venv_ensure: usage: venv_ensure NAME SPEC... [--no-deps SPEC...]" >&2
        return 2
    fi
    local name="$1"
    shift
    local specs=() nodeps=() arg in_nodeps=0
    for arg in "$@"; do
        if [ "$arg" = "--no-deps" ]; then
            in_nodeps=1
            continue
        fi
        if ! [[ $arg =~ ^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?==[^=[:space:]]+$ ]]; then
            echo "venv_ensure: '$arg' is not an exact pin DIST==VERSION" >&2
            return 2
        fi
        if [ "$in_nodeps" = 1 ]; then
            nodeps+=("$arg")
        else
            specs+=("$arg")
        fi
    done
    if [ $((${#specs[@]} + ${#nodeps[@]})) -eq 0 ]; then
        echo "venv_ensure: no package specs given for venv '$name'" >&2
        return 2
    fi

    VENV_DIR="$VENV_REPO_ROOT/target/venvs/$name"
    VENV_PY="$VENV_DIR/bin/python"

    if [ ! -x "$VENV_PY" ]; then
        echo "creating venv at $VENV_DIR" >&2
        mkdir -p "$(dirname "$VENV_DIR")"
        "${PYTHON:-python3}" -m venv "$VENV_DIR" || return
    fi

    # Only hit PyPI when the pinned versions are not already installed.
    local why
    if why="$(_venv_pins_satisfied "$VENV_PY" "${specs[@]}" "${nodeps[@]}" 2>&1)"; then
        return 0
    fi
    echo "installing pinned packages into $VENV_DIR:" >&2
    printf '%s\n' "$why" >&2

    if [ ${#specs[@]} -gt 0 ]; then
        "$VENV_PY" -m pip install --quiet --disable-pip-version-check "${specs[@]}" || return
    fi
    if [ ${#nodeps[@]} -gt 0 ]; then
        "$VENV_PY" -m pip install --quiet --disable-pip-version-check --no-deps "${nodeps[@]}" || return
    fi

    if ! _venv_pins_satisfied "$VENV_PY" "${specs[@]}" "${nodeps[@]}"; then
        echo "venv_ensure: warning: pins above still not satisfied in $VENV_DIR after pip install" >&2
    fi
}
