#!/usr/bin/env python3
"""Reference class activation maps from pytorch-grad-cam for a small CNN with an
MLP head (GAP -> Linear -> ReLU -> Dropout -> Linear).

Writes into --out (default tests/fixtures/gradcam):
  mlp_net.onnx                       the network, opset 13, input `input` [N,3,64,64],
                                     output `logits` [N,5]
  input_<i>.npy                      1x3x64x64 float32 inputs (seeded uniform [0,1))
  features_<i>.npy                   1x32x8x8 target-layer activations F (last ReLU)
  logits_<i>.npy                     1x5 logits (torch)
  grad_<i>_class<k>.npy              1x32x8x8 d y_k / d F (torch.autograd.grad)
  <method>_<i>_class<k>_raw.npy      1x8x8 the method's get_cam_image output
                                     (before np.maximum and scaling)
  <method>_<i>_class<k>_post.npy     1x8x8 the library's own post-processing,
                                     without resizing (see README.md)
  <method>_<i>_class<k>_weights.npy  1x32 channel weights (gradcam, gradcampp, ablationcam)
  eigencam_<i>_raw.npy / _post.npy   class-agnostic EigenCAM
  reference.json                     index of all files above
The numbers come from the installed pytorch-grad-cam; nothing is re-implemented
except as a cross-check (asserted below).
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

import onnx
import onnxruntime as ort
import pytorch_grad_cam
from pytorch_grad_cam import AblationCAM, EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

SEED_MODEL = 20240517
SEED_INPUTS = 7
N_INPUTS = 3
C, K, HIDDEN = 32, 5, 16


def conv_bn_relu(cin, cout, stride):
    return [
        nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=False),
    ]


class MlpNet(nn.Module):
    """torchvision-style: features -> avgpool -> flatten -> classifier."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn_relu(3, 16, 1),    # 64x64
            *conv_bn_relu(16, 16, 2),   # 32x32
            *conv_bn_relu(16, 32, 2),   # 16x16
            *conv_bn_relu(32, C, 2),    # 8x8  <- features[11] is the target layer
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Sequential(
            nn.Linear(C, HIDDEN),
            nn.ReLU(inplace=False),
            nn.Dropout(0.2),
            nn.Linear(HIDDEN, K),
        )

    def forward(self, x):
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


def build_model():
    """Seeded random weights, made well-conditioned so that the fixture is informative:
    BatchNorm statistics calibrated on a seeded batch (so that every ReLU is about half
    active), then the head's biases set so that about half of the hidden units are
    active and the logits sit at distinct, clearly non-zero values. All of this only
    chooses the weights; the network is an ordinary eval-mode nn.Module."""
    torch.manual_seed(SEED_MODEL)
    model = MlpNet()
    g = torch.Generator().manual_seed(SEED_MODEL + 1)
    calib = torch.rand(16, 3, 64, 64, generator=g)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.8 + 0.4 * torch.rand(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration pass
        model.features.train()
        model.features(calib)
        model.eval()
        pooled = model.flatten(model.avgpool(model.features(calib)))
        mu = pooled.mean(dim=0)
        lin1, lin2 = model.classifier[0], model.classifier[3]
        lin1.weight.copy_(torch.randn(HIDDEN, C, generator=g))
        pre = lin1.weight @ mu
        lin1.bias.copy_(-pre + 0.5 * pre.abs().mean() * torch.randn(HIDDEN, generator=g))
        hidden = torch.relu(lin1(pooled)).mean(dim=0)
        lin2.weight.copy_(torch.randn(K, HIDDEN, generator=g))
        wanted = torch.tensor([1.0, 2.0, -0.5, 0.4, -1.5])[:K]
        lin2.bias.copy_(wanted - lin2.weight @ hidden)
    model.eval()
    return model


def make_inputs():
    rng = np.random.default_rng(SEED_INPUTS)
    return [rng.uniform(0.0, 1.0, size=(1, 3, 64, 64)).astype(np.float32) for _ in range(N_INPUTS)]


class Recorder:
    """Wraps a CAM object's get_cam_weights / get_cam_image on the instance to keep
    what the library itself computed, then lets the library run unchanged."""

    def __init__(self, cam):
        self.weights = None
        self.raw = None
        if hasattr(cam, "get_cam_weights") and type(cam).get_cam_weights is not pytorch_grad_cam.base_cam.BaseCAM.get_cam_weights:
            orig_w = cam.get_cam_weights

            def get_cam_weights(*a, **kw):
                w = orig_w(*a, **kw)
                self.weights = np.array(w, copy=True)
                return w

            cam.get_cam_weights = get_cam_weights
        orig_i = cam.get_cam_image

        def get_cam_image(*a, **kw):
            img = orig_i(*a, **kw)
            self.raw = np.array(img, copy=True)
            return img

        cam.get_cam_image = get_cam_image
        # Keep the library's post-processing but skip the resize: scale_cam_image(cam,
        # target_size=None) does min-max only. compute_cam_per_layer asks this method
        # for the target size.
        cam.get_target_width_height = lambda input_tensor: None


def scale_like_library(cam):
    """Re-statement of BaseCAM.forward for one target layer without resizing, only to
    cross-check the library's output: np.maximum(cam, 0) -> scale_cam_image ->
    aggregate_multi_layers (np.maximum, mean over layers, scale_cam_image)."""
    def scale(x):
        out = []
        for img in x:
            img = img - np.min(img)
            img = img / (1e-7 + np.max(img))
            out.append(img)
        return np.float32(out)

    a = scale(np.maximum(cam, 0))
    return scale(np.maximum(a, 0))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/gradcam")
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    model = build_model()
    target_layer = model.features[-1]
    assert isinstance(target_layer, nn.ReLU)

    files = {}

    def save(name, arr, **meta):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        np.save(os.path.join(out, name), arr)
        files[name] = dict(shape=list(arr.shape), dtype="float32", **meta)

    # ---- ONNX export and check ------------------------------------------------
    onnx_path = os.path.join(out, "mlp_net.onnx")
    dummy = torch.zeros(1, 3, 64, 64)
    torch.onnx.export(
        model, dummy, onnx_path, opset_version=13, dynamo=False,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    g = onnx.load(onnx_path)
    onnx.checker.check_model(g)
    nodes = [(n.op_type, n.name, list(n.input), list(n.output)) for n in g.graph.node]
    ops = [n[0] for n in nodes]
    tail = ops[ops.index("GlobalAveragePool"):]
    print("ONNX head:", " -> ".join(tail))
    assert tail == ["GlobalAveragePool", "Flatten", "Gemm", "Relu", "Gemm"], tail
    gap = nodes[ops.index("GlobalAveragePool")]
    feature_output = gap[2][0]
    feature_node = [n for n in nodes if feature_output in n[3]][0]
    assert feature_node[0] == "Relu", feature_node
    print("feature map tensor:", feature_output, "from", feature_node[1])
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])

    inputs = make_inputs()
    x_all = torch.from_numpy(np.concatenate(inputs))
    with torch.no_grad():
        t_logits = model(x_all).numpy()
    o_logits = sess.run(["logits"], {"input": np.concatenate(inputs)})[0]
    d_ort = float(np.abs(t_logits - o_logits).max())
    print(f"max |onnxruntime - torch| logits over batch of {N_INPUTS}: {d_ort:.3g}")
    assert d_ort <= 1e-5, d_ort

    # ---- sanity of the random network --------------------------------------------
    with torch.no_grad():
        feats_all = model.features(x_all)
        pooled = feats_all.mean(dim=(2, 3))
        hidden = torch.relu(model.classifier[0](pooled))
    active = (hidden > 0).sum(dim=1).tolist()
    print("active hidden units per input:", active, "of", HIDDEN)
    assert min(active) >= 4, active
    spread = (t_logits.max(1) - t_logits.min(1)).tolist()
    print("logits:\n", np.array2string(t_logits, precision=4))
    assert min(spread) > 0.5, spread
    assert float(feats_all.min()) == 0.0  # ReLU output has exact zeros (AblationLayer zeroing branch)

    cases = []
    summary = []
    for i, x_np in enumerate(inputs):
        x = torch.from_numpy(x_np)
        save(f"input_{i}.npy", x_np, what="input, seeded uniform [0,1)", input=i)
        # features and autograd gradients
        feats = model.features(x)
        feats_leaf = feats.detach().requires_grad_(True)
        logits = model.classifier(model.flatten(model.avgpool(feats_leaf)))
        save(f"features_{i}.npy", feats.detach().numpy(),
             what="F = output of features[11] (last ReLU of the backbone)", input=i)
        save(f"logits_{i}.npy", logits.detach().numpy(), what="logits (torch, eval)", input=i)
        top1 = int(np.argmax(logits.detach().numpy()[0]))
        targets = {top1: ["top1"]}
        targets.setdefault(0, []).append("class0")
        for k, roles in sorted(targets.items()):
            (gk,) = torch.autograd.grad(logits[0, k], feats_leaf, retain_graph=True)
            save(f"grad_{i}_class{k}.npy", gk.numpy(), what="d logits[0,k] / d F (torch.autograd.grad)",
                 input=i, target_class=k)
            yk = float(logits[0, k].detach())
            assert abs(yk) > 0.2, yk  # AblationCAM divides by y_k
            case = dict(input=i, target_class=k, roles=roles, logit=yk, methods={})
            for mname, cls in [("gradcam", GradCAM), ("gradcampp", GradCAMPlusPlus),
                               ("hirescam", HiResCAM), ("ablationcam", AblationCAM)]:
                cam = cls(model=model, target_layers=[target_layer])
                rec = Recorder(cam)
                post = cam(input_tensor=x, targets=[ClassifierOutputTarget(k)])
                # library-captured gradients equal autograd's
                if cam.uses_gradients:
                    lib_grad = cam.activations_and_grads.gradients[0].numpy()
                    assert np.allclose(lib_grad, gk.numpy(), rtol=1e-6, atol=1e-9)
                lib_act = cam.activations_and_grads.activations[0].numpy()
                assert np.array_equal(lib_act, feats.detach().numpy())
                cam.activations_and_grads.release()
                assert rec.raw.shape == (1, 8, 8) and post.shape == (1, 8, 8), (rec.raw.shape, post.shape)
                check = scale_like_library(rec.raw)
                assert np.allclose(check, post, atol=1e-7), float(np.abs(check - post).max())
                base = f"{mname}_{i}_class{k}"
                meta = dict(input=i, target_class=k, method=cls.__name__)
                save(base + "_raw.npy", rec.raw, what="get_cam_image output before np.maximum/scale_cam_image", **meta)
                save(base + "_post.npy", post, what="library post-processing at 8x8 (see README)", **meta)
                entry = dict(raw=base + "_raw.npy", post=base + "_post.npy")
                if rec.weights is not None:
                    assert rec.weights.shape == (1, C), rec.weights.shape
                    save(base + "_weights.npy", rec.weights, what="get_cam_weights output", **meta)
                    entry["weights"] = base + "_weights.npy"
                    # cross-check: raw == sum_c w_c F_c
                    re = (rec.weights[:, :, None, None] * feats.detach().numpy()).sum(axis=1)
                    assert np.allclose(re, rec.raw, rtol=1e-5, atol=1e-6)
                case["methods"][mname] = entry
            cases.append(case)
            g = gk.numpy()[0]
            summary.append((i, k, roles, yk,
                            float(np.abs(g - g.mean(axis=(1, 2), keepdims=True)).max())))
        # EigenCAM: class-agnostic, no gradients, target ignored.
        cam = EigenCAM(model=model, target_layers=[target_layer])
        rec = Recorder(cam)
        post = cam(input_tensor=x, targets=[ClassifierOutputTarget(top1)])
        cam.activations_and_grads.release()
        assert np.allclose(scale_like_library(rec.raw), post, atol=1e-7)
        meta = dict(input=i, method="EigenCAM")
        save(f"eigencam_{i}_raw.npy", rec.raw,
             what="get_2d_projection(F): centred SVD projection on VT[0], float32, no sign correction", **meta)
        save(f"eigencam_{i}_post.npy", post, what="library post-processing at 8x8 (see README)", **meta)
        # The SVD pieces, recomputed exactly as get_2d_projection does (same numpy call on
        # the same float32 data), so a test can compare up to the SVD's sign ambiguity.
        a = feats.detach().numpy()[0].reshape(C, -1).transpose()
        a = a - a.mean(axis=0)
        _, s_vals, vt = np.linalg.svd(a, full_matrices=True)
        assert np.array_equal(np.float32((a @ vt[0, :]).reshape(1, 8, 8)), rec.raw)
        save(f"eigencam_{i}_vt0.npy", vt[0:1, :], what="VT[0] (first right singular vector, 1x32) "
             "used by get_2d_projection; sign as numpy/LAPACK returned it", **meta)
        save(f"eigencam_{i}_singular_values.npy", s_vals[None, :], what="singular values (1x32) of the "
             "centred 64x32 activation matrix", **meta)
        cases.append(dict(input=i, target_class=None, roles=["class-agnostic"],
                          s1_over_s2=float(s_vals[0] / s_vals[1]),
                          methods={"eigencam": dict(raw=f"eigencam_{i}_raw.npy", post=f"eigencam_{i}_post.npy",
                                                    vt0=f"eigencam_{i}_vt0.npy",
                                                    singular_values=f"eigencam_{i}_singular_values.npy")}))

    for s in summary:
        print(f"input {s[0]} class {s[1]} {s[2]}: logit {s[3]:.4f}; grad spatial spread {s[4]:.2e}")

    ref = dict(
        generator="scripts/reference/gradcam_reference.sh",
        versions=dict(torch=torch.__version__, grad_cam=_dist_version("grad-cam"),
                      numpy=np.__version__, onnx=onnx.__version__, onnxruntime=ort.__version__,
                      python=sys.version.split()[0]),
        model=dict(
            onnx="mlp_net.onnx", onnx_sha256=sha256(onnx_path), opset=13,
            input=dict(name="input", shape=["N", 3, 64, 64]),
            output=dict(name="logits", shape=["N", K]),
            feature_tensor=feature_output, feature_node=feature_node[1], feature_shape=[1, C, 8, 8],
            onnx_head=" -> ".join(tail),
            torch_target_layer="model.features[11] (nn.ReLU, the last ReLU of the backbone)",
            max_abs_onnxruntime_minus_torch_logits=d_ort,
            seeds=dict(model=SEED_MODEL, inputs=SEED_INPUTS),
        ),
        conventions=dict(
            layout="all arrays float32 NCHW, batch 1; maps 1x8x8; weights 1x32",
            target="ClassifierOutputTarget(k): the raw logit y_k (no softmax)",
            raw="output of the method's get_cam_image (GradCAM/GradCAM++/AblationCAM: sum_c w_c F_c; "
                "HiResCAM: sum_c (dy/dF * F)_c; EigenCAM: get_2d_projection(F)); before np.maximum",
            eigencam_sign="EigenCAM uses get_2d_projection (no sign correction): the sign of VT[0] is "
                          "whatever numpy's LAPACK SVD returns; raw maps are defined up to a global sign, "
                          "post maps are not sign-invariant",
            ablation="AblationCAM weights (y - y_ablated)/y with y = logit of the target class; the ablated "
                     "channel is set to 0 (ReLU output has exact zeros, so AblationLayer takes its zeroing branch)",
            post="what BaseCAM.forward returns for one target layer when the resize is skipped "
                 "(get_target_width_height -> None): s(max(s(max(raw,0)),0)) with "
                 "s(m) = (m - min m) / (1e-7 + max(m - min m)), float32",
        ),
        files=files,
        cases=cases,
    )
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
    print(f"wrote {len(files)} arrays + mlp_net.onnx + reference.json to {out}")


def _dist_version(name):
    from importlib.metadata import version
    return version(name)


if __name__ == "__main__":
    main()
