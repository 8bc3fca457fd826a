#!/usr/bin/env bash
# How the map is computed, side by side: the demo recipe (what CAM pipelines do: shorter
# side 256, centre crop 224), the whole image at one larger size, and several sizes plus
# mirrored passes averaged ([cam] recipe = "sharp"), each scored by the same `cambox eval`.
#
# Usage (from anywhere): scripts/bench/recipe_benchmark.sh [SET...]   sets: phantoms natural pasted
#   (default: all three). OUT (default /tmp/recipes) holds the runs, evals and configs.
#
# Sets:
#   phantoms  data/phantoms (120 synthetic X-rays, 256x256, lesion boxes) with the phantom CNN
#   natural   the bundled photos, hand-drawn VOC boxes (data/annotations/natural-voc)
#   pasted    60 photos' objects pasted on textures, exact VOC boxes (data/pasted)
# Every run gets the truth (--truth), so that each annotated class has a map (GT-known
# Loc) and maps are saved for the threshold sweep (MaxBoxAccV2). Images/s is the run's
# own (run.json: images / wall seconds, 2 worker threads), so it includes decoding and
# writing the maps; masks and overlays are off in every recipe.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
out=${OUT:-/tmp/recipes}
sets=("$@")
[ ${#sets[@]} -eq 0 ] && sets=(phantoms natural pasted)
cargo build --release --quiet
bin=$root/target/release/cambox
mkdir -p "$out/cfg"

imagenet_base() {
    cat <<EOF
[model]
path = "$root/data/models/efficientnet-lite0.onnx"
labels = "$root/data/models/imagenet-classes.txt"
$1
[preprocess]
resampling = "bilinear"
channels = "rgb"
scale = "unit"
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
pad_value = 0.449
$2
[output]
top_k = 5
maps = true
[localise]
classes = "top1"
$3
EOF
}

phantom_base() {
    cat <<EOF
[model]
path = "$root/data/models/phantom-cnn.onnx"
labels = "$root/data/models/phantom-classes.txt"
$1
[preprocess]
resize = "stretch"
resampling = "bilinear"
scale = "unit"
mean = [0.5]
std = [0.25]
[output]
top_k = 2
maps = true
[localise]
classes = ["lesion"]
$2
EOF
}

# recipe name -> config text, per set
config() {
    local set=$1 recipe=$2
    if [ "$set" = phantoms ]; then
        case $recipe in
            demo) phantom_base "" "" ;;
            whole-320) phantom_base "input_size = [320, 320]" "" ;;
            sharp) phantom_base "" "[cam]
recipe = \"sharp\"" ;;
        esac
    else
        case $recipe in
            demo) imagenet_base "" 'resize = "shorter-side-then-center-crop"
resize_to = 256' "" ;;
            whole-stretch) imagenet_base "input_size = [480, 320]" 'resize = "stretch"' "" ;;
            whole-letterbox) imagenet_base "input_size = [480, 320]" 'resize = "letterbox"' "" ;;
            sharp) imagenet_base "input_size = [480, 320]" 'resize = "stretch"' '[cam]
recipe = "sharp"' ;;
            sharp-letterbox) imagenet_base "input_size = [480, 320]" 'resize = "letterbox"' '[cam]
recipe = "sharp"' ;;
        esac
    fi
}

for set in "${sets[@]}"; do
    case $set in
        phantoms)
            images=data/phantoms/images truth=data/phantoms/labels.csv map=()
            masks=(--truth-masks data/phantoms/masks)
            recipes=(demo whole-320 sharp) ;;
        natural)
            images=data/samples/natural truth=data/annotations/natural-voc
            map=(--class-map data/annotations/natural-imagenet-map.csv) masks=()
            recipes=(demo whole-stretch whole-letterbox sharp sharp-letterbox) ;;
        pasted)
            images=data/pasted/images truth=data/pasted/voc
            map=(--class-map data/annotations/natural-imagenet-map.csv)
            masks=(--truth-masks data/pasted/masks)
            recipes=(demo whole-stretch whole-letterbox sharp sharp-letterbox) ;;
        *) echo "unknown set $set" >&2; exit 2 ;;
    esac
    for r in "${recipes[@]}"; do
        cfg=$out/cfg/$set-$r.toml
        config "$set" "$r" > "$cfg"
        run=$out/$set-$r
        "$bin" run --config "$cfg" --out "$run" --force --quiet --truth "$truth" "${map[@]}" "$images"
        "$bin" eval --run "$run" --truth "$truth" "${map[@]}" "${masks[@]}" --out "$run-eval" > "$run-eval.txt"
    done
    python3 - "$out" "$set" "${recipes[@]}" <<'PY'
import json, sys
out, set_, recipes = sys.argv[1], sys.argv[2], sys.argv[3:]
f = lambda v: "-" if v is None else f"{v:.3f}"
print(f"\n{set_}:")
head = ["recipe", "passes", "input sizes", "top-1 acc", "CorLoc@0.5", "GT-known Loc", "Top-1 Loc", "MaxBoxAccV2", "images/s"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in recipes:
    run = json.load(open(f"{out}/{set_}-{r}/run.json"))
    s = json.load(open(f"{out}/{set_}-{r}-eval/summary.json"))
    cut = run["model"]["cut"]
    sizes = [run["model"]["input"]] and [[run["model"]["input"]["width"], run["model"]["input"]["height"]]]
    sizes += [o["input_size"] for o in cut.get("other_sizes", [])]
    cam = run["config"]["cam"]
    flip = cam.get("flip", cam.get("recipe") == "sharp")
    passes = len(sizes) * (2 if flip else 1)
    t = run["time"]
    ips = t["images"] / t["wall_seconds"]
    m = s.get("max_box_acc") or {}
    acc = s["classification"].get("accuracy")
    print("| " + " | ".join([r, str(passes), ", ".join(f"{w}x{h}" for w, h in sizes), f(acc), f(s["corloc"]),
                             f(s.get("gt_known_loc")), f(s.get("top1_loc")), f(m.get("v2")), f"{ips:.1f}"]) + " |")
# The map figures, each with its 95 % bootstrap interval (1,000 resamples of images).
ci = lambda s, k, v: "-" if v is None else (f"{v:.3f} [{s['ci95']['all'][k][0]:.3f}, {s['ci95']['all'][k][1]:.3f}]"
                                             if k in (s.get("ci95") or {}).get("all", {}) else f"{v:.3f}")
print(f"\n{set_}, map figures (95 % bootstrap intervals):")
head = ["recipe", "GT-known Loc", "pointing game", "energy", "PxAP", "pixel IoU (tau)"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in recipes:
    s = json.load(open(f"{out}/{set_}-{r}-eval/summary.json"))
    piou = ci(s, "pixel_iou", s.get("pixel_iou"))
    if s.get("pixel_iou_tau") is not None:
        piou += f" ({s['pixel_iou_tau']})"
    print("| " + " | ".join([r, ci(s, "gt_known_loc", s.get("gt_known_loc")), ci(s, "pointing_game", s.get("pointing_game")),
                             ci(s, "energy_pointing_game", s.get("energy_pointing_game")), ci(s, "pxap", s.get("pxap")),
                             piou]) + " |")
# GT-known Loc of the largest component by cut (the sweep's V1 curve at IoU 0.5): which cut
# each recipe's maps need (cam-paper cuts at 0.20 of the maximum, the sharp preset at 0.30).
cuts = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6]
print(f"\n{set_}, GT-known Loc (largest component) by cut:")
print("| recipe | " + " | ".join(f"{c:.2f}" for c in cuts) + " |")
print("|" + "---|" * (len(cuts) + 1))
for r in recipes:
    sw = json.load(open(f"{out}/{set_}-{r}-eval/summary.json")).get("sweep")
    if not sw:
        continue
    row = [f(sw["box_acc_v1"][sw["taus"].index(c)][1]) for c in cuts]
    print(f"| {r} | " + " | ".join(row) + " |")
PY
done
