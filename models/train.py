#!/usr/bin/python3
"""Retrain and re-export modelgate's four Fashion-MNIST models.

    /usr/bin/python3 models/train.py                      # all four, then measure
    /usr/bin/python3 models/train.py --only fashion-cnn   # one (repeatable / comma list)
    /usr/bin/python3 models/train.py --epochs 2           # override every recipe's epochs

Writes models/<name>/1/model.onnx, models/<name>/config.json,
models/<name>/training.json, the test fixtures under test/fixtures/, and then
runs `node models/measure.js` (CPU timing + cost + model cards) unless
--no-measure. Needs Debian's python3-torch, python3-onnx and
dataset-fashion-mnist (see models/README.md).
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
THREADS = int(os.environ.get("MODELGATE_TRAIN_THREADS", "2"))
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, str(THREADS))

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

APT_HINT = "sudo apt-get install python3-torch python3-onnx dataset-fashion-mnist"


def die(msg):
    print(f"\nerror: {msg}", file=sys.stderr)
    sys.exit(2)


try:
    import numpy as np
except ImportError:
    die(f"numpy is not importable from {sys.executable}.\nInstall with:  {APT_HINT}")
try:
    import torch
    import torch.nn.functional as F
except ImportError:
    die(f"PyTorch is not importable from {sys.executable} (Debian package python3-torch).\n"
        f"Install with:  {APT_HINT}\nand run this script with /usr/bin/python3.")
try:
    import onnx  # noqa: F401
except ImportError:
    die(f"onnx is not importable from {sys.executable} (Debian package python3-onnx).\n"
        f"Install with:  {APT_HINT}\nand run this script with /usr/bin/python3.")

from training import data as fdata  # noqa: E402
from training.export import OPSET, check_graph, export, load_cuda_table, output_names  # noqa: E402
from training.flops import count_macs  # noqa: E402
from training.nets import ARCHS  # noqa: E402
from training.recipes import RECIPES  # noqa: E402

FIXTURES = os.path.join(ROOT, "test", "fixtures")
OUT = HERE  # where models/<name>/ is written; --scratch redirects it (and FIXTURES)
N_FIXTURE = 1000
N_REFERENCE = 16


def fmt_s(s):
    return f"{int(s // 60)}m{int(s % 60):02d}s"


def blas_hint():
    lib = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    if "/blas/" in lib:  # Debian's reference BLAS: matmuls ~10x slower
        print("note: libblas.so.3 is the reference BLAS; LSTM/attention training is ~10x faster\n"
              "      with OpenBLAS:  sudo apt-get install libopenblas0-pthread", flush=True)


# --------------------------------------------------------------------------- augmentation
def augment(x, kinds):
    if "hflip" in kinds:
        flip = torch.rand(x.shape[0]) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if "shift2" in kinds:  # random translation by up to 2 px (zero padding)
        b = x.shape[0]
        padded = F.pad(x, (2, 2, 2, 2))
        dy = torch.randint(0, 5, (b,))
        dx = torch.randint(0, 5, (b,))
        ar = torch.arange(28)
        rows = (dy[:, None] + ar)[:, :, None]          # [B,28,1]
        cols = (dx[:, None] + ar)[:, None, :]          # [B,1,28]
        x = padded[torch.arange(b)[:, None, None], 0, rows, cols].unsqueeze(1)
    return x


# --------------------------------------------------------------------------- train / eval
def predict(model, images_u8, batch=1000):
    """images_u8: torch uint8 [N,1,28,28] -> (probabilities [N,10], attention or None)."""
    from training.export import ExportWrapper
    w = ExportWrapper(model).eval()
    probs, atts = [], []
    with torch.no_grad():
        for i in range(0, images_u8.shape[0], batch):
            out = w(images_u8[i:i + batch].float() / 255.0)
            if isinstance(out, tuple):
                probs.append(out[0])
                atts.append(out[1])
            else:
                probs.append(out)
    return torch.cat(probs), (torch.cat(atts) if atts else None)


def accuracy(model, images_u8, labels):
    probs, _ = predict(model, images_u8)
    return (probs.argmax(1) == labels).float().mean().item()


def param_groups(model, wd):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if p.ndim >= 2 and not n.endswith(("pos", "cls")) else no_decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def train_one(name, recipe, ds, epochs, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ARCHS[name](**recipe["kwargs"])
    bs = recipe["batch_size"]
    steps_per_epoch = math.ceil(ds["n_train"] / bs)
    opt = torch.optim.AdamW(param_groups(model, recipe["weight_decay"]), lr=recipe["lr"])
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe["lr"], total_steps=epochs * steps_per_epoch,
        pct_start=max(0.25, 2.0 / (epochs * steps_per_epoch)))  # the max() only matters for tiny smoke runs
    history = []
    t0 = time.time()
    print(f"\n=== {name}: {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{epochs} epochs x {steps_per_epoch} steps (batch {bs}) ===", flush=True)
    for epoch in range(1, epochs + 1):
        te = time.time()
        model.train()
        perm = torch.from_numpy(rng.permutation(ds["n_train"]))
        tot_loss, correct, seen = 0.0, 0, 0
        for i in range(steps_per_epoch):
            idx = perm[i * bs:(i + 1) * bs]
            x = ds["train_x"][idx].float() / 255.0
            y = ds["train_y"][idx]
            if recipe["augment"]:
                x = augment(x, recipe["augment"])
            out = model(x)
            logits = out[0] if isinstance(out, tuple) else out
            loss = F.cross_entropy(logits, y, label_smoothing=recipe["label_smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if recipe["clip"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe["clip"])
            opt.step()
            sched.step()
            tot_loss += loss.item() * y.shape[0]
            correct += (logits.argmax(1) == y).sum().item()
            seen += y.shape[0]
        test_acc = accuracy(model, ds["test_x"], ds["test_y"])
        row = dict(epoch=epoch, loss=tot_loss / seen, train_acc=correct / seen, test_acc=test_acc,
                   epoch_s=time.time() - te, elapsed_s=time.time() - t0)
        history.append(row)
        print(f"  [{name}] epoch {epoch:2d}/{epochs}  loss {row['loss']:.4f}  "
              f"train-acc {row['train_acc']:.4f}  test-acc {test_acc:.4f}  "
              f"epoch {row['epoch_s']:.0f}s  elapsed {fmt_s(row['elapsed_s'])}", flush=True)
    return model, history, time.time() - t0


# --------------------------------------------------------------------------- artefacts
def write_fixtures(ds):
    os.makedirs(os.path.join(FIXTURES, "reference"), exist_ok=True)
    imgs = ds["test_x"][:N_FIXTURE].numpy().astype(np.uint8).reshape(N_FIXTURE, 784)
    labels = ds["test_y"][:N_FIXTURE].numpy().astype(np.uint8)
    files = {"fashion-mnist-test-1000.bin": imgs.tobytes(),
             "fashion-mnist-test-1000-labels.bin": labels.tobytes()}
    manifest = {"source": "first 1000 images/labels of Fashion-MNIST t10k (dataset-fashion-mnist), written by models/train.py",
                "files": {}}
    for fname, blob in files.items():
        with open(os.path.join(FIXTURES, fname), "wb") as f:
            f.write(blob)
        manifest["files"][fname] = {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    with open(os.path.join(FIXTURES, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def write_reference(name, model, ds):
    probs, att = predict(model, ds["test_x"][:N_REFERENCE])
    ref = {
        "model": name,
        "source": "PyTorch (eval mode) at export time, see models/train.py",
        "input": f"first {N_REFERENCE} images of test/fixtures/fashion-mnist-test-1000.bin as float32 pixel/255, NCHW [16,1,28,28]",
        "labels": ds["test_y"][:N_REFERENCE].tolist(),
        "probabilities": [[float(v) for v in row] for row in probs.numpy().astype(np.float32)],
    }
    if att is not None:
        ref["attention"] = [[float(v) for v in row] for row in att.numpy().astype(np.float32)]
    with open(os.path.join(FIXTURES, "reference", f"{name}.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


def architecture_text(name, kw, n_att):
    if name == "fashion-cnn":
        return ("x/255 -> (x-0.286)/0.353 -> [Conv3x3 1->32, BN, ReLU, MaxPool2] -> [Conv3x3 32->64, BN, ReLU, MaxPool2] "
                "-> [Conv3x3 64->128, BN, ReLU, MaxPool2] -> Flatten 1152 -> Dense 128, ReLU -> Dropout 0.3 "
                "-> Dense 10 -> Softmax (BN folded into Conv at export)")
    if name == "fashion-lstm":
        d = "bidirectional " if kw.get("bidirectional") else ""
        return (f"x/255 -> (x-0.286)/0.353 -> 28 rows as a 28-step sequence of 28 pixels -> one {d}LSTM layer "
                f"(hidden {kw['hidden']}, single ONNX LSTM op) -> concat(last step, mean over steps) -> Dropout 0.2 -> Dense 10 -> Softmax")
    if name == "fashion-attention":
        g = 28 // kw["patch"]
        return (f"x/255 -> (x-0.286)/0.353 -> {kw['patch']}x{kw['patch']} patches ({g}x{g}={n_att}) -> linear embedding {kw['dim']} "
                f"-> class token + learned positional embedding -> {kw['depth']} pre-norm encoder layers "
                f"({kw['heads']}-head self-attention written as MatMul+Softmax, MLP {kw['dim']}->{2 * kw['dim']}->{kw['dim']} GELU) "
                f"-> LayerNorm(class token) -> Dense 10 -> Softmax. Output `attention` [{n_att}]: last layer's attention "
                f"from the class token to the {n_att} patches (row-major), mean over heads, renormalised over patches")
    if name == "fashion-hybrid":
        d = "bidirectional " if kw.get("bidirectional", True) else ""
        return ("x/255 -> (x-0.286)/0.353 -> [Conv3x3 1->32, BN, ReLU, MaxPool2] -> [Conv3x3 32->64, BN, ReLU, MaxPool 1x2] "
                "-> [Conv3x3 64->64, BN, ReLU] -> 64x14x7 map read as a 14-step sequence (one step per 2-pixel band of rows, "
                f"448 features) -> {d}LSTM (hidden {kw['hidden']}, single ONNX LSTM op) -> additive self-attention pooling "
                "(Dense 64, tanh, Dense 1, softmax over the 14 steps) -> Dense 128, ReLU -> Dropout 0.2 -> Dense 10 -> Softmax. "
                "Output `attention` [14]: the pooling weights over the 14 horizontal bands, top to bottom")
    raise KeyError(name)


def write_config(name, recipe, model, facts, test_acc, train_s, epochs, seed, cuda_commit):
    mdir = os.path.join(OUT, name)
    cfg_path = os.path.join(mdir, "config.json")
    old = {}
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            old = json.load(f).get("card", {})
    outputs = [{"name": "probabilities", "datatype": "FP32", "dims": [10]}]
    if model.has_attention:
        outputs.append({"name": "attention", "datatype": "FP32",
                        "dims": [int(facts["outputs"]["attention"][1])]})
    n_att = outputs[-1]["dims"][0] if model.has_attention else 0
    aug = ", ".join({"hflip": "random horizontal flip", "shift2": "random shift up to 2 px"}[a]
                    for a in recipe["augment"]) or "none"
    clip = f", grad-norm clip {recipe['clip']}" if recipe["clip"] else ""
    training = (f"{epochs} epochs on the 60k training set, batch {recipe['batch_size']}, AdamW (max lr {recipe['lr']}, "
                f"weight decay {recipe['weight_decay']}), OneCycle schedule (25% warm-up, cosine anneal){clip}, "
                f"augmentation: {aug}; seed {seed}, deterministic shuffles; final-epoch weights (no checkpoint "
                f"selection on the test set); wall time {train_s / 60:.1f} min on 2 CPU threads (PyTorch {torch.__version__})")
    ops = ", ".join(facts["op_types"])
    cuda_check = (f"Listed the op types of the exported graph ({ops}) and checked each against the "
                  f"CUDAExecutionProvider section of onnxruntime's docs/OperatorKernels.md (microsoft/onnxruntime@{cuda_commit[:12]}): "
                  f"each has a CUDA kernel registered at opset {facts['opset']} for the types used here (float32; int64 for the "
                  "shape arithmetic of the dynamic batch axis); Constant nodes need no kernel (they become initializers). "
                  "The check runs automatically at export (models/training/export.py against "
                  "models/training/cuda_ep_ops.json) and fails the export on any miss. Not run on a GPU: the models "
                  "were built and timed on a CPU-only machine.")
    card = {
        "architecture": architecture_text(name, recipe["kwargs"], n_att),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "flops_per_image": int(2 * count_macs(model, torch.rand(1, 1, 28, 28))),
        "training": training,
        "test_accuracy": round(test_acc, 4),
        "target_accuracy": recipe["target"],
        "published_reference": recipe["published"],
        "cpu_ms_per_image_batch1": old.get("cpu_ms_per_image_batch1", 0.0),
        "cpu_ms_per_image_batch64": old.get("cpu_ms_per_image_batch64", 0.0),
        "cuda_ops_check": cuda_check,
        "onnx_opset": facts["opset"],
        "size_bytes": facts["size_bytes"],
    }
    cfg = {
        "name": name,
        "platform": "onnxruntime_onnx",
        "description": recipe["description"],
        "max_batch_size": 64,
        "dynamic_batching": {"max_queue_delay_microseconds": 2000, "preferred_batch_size": [32, 64]},
        "inputs": [{"name": "image", "datatype": "FP32", "dims": [1, 28, 28]}],
        "outputs": outputs,
        "output_kind": "probabilities",
        "preprocessing": {"layout": "NCHW", "color": "grey", "width": 28, "height": 28,
                          "scale": 1 / 255, "invert": False},
        "labels": fdata.LABELS,
        "cost": 1.0 if name == "fashion-cnn" else None,
        "card": card,
    }
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            cfg["cost"] = json.load(f).get("cost", cfg["cost"])
    if cfg["cost"] is None:
        cfg["cost"] = 1.0  # placeholder until models/measure.js runs
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    return cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], help="model name(s), repeatable or comma-separated")
    ap.add_argument("--epochs", type=int, help="override every recipe's epoch count (e.g. 1 for a smoke run)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--export-only", action="store_true",
                    help="skip training: re-export from the weights cached in models/.cache/<name>.pt")
    ap.add_argument("--scratch", metavar="DIR",
                    help="write models, fixtures and cache under DIR instead of models/ and test/fixtures/ "
                         "(for smoke runs; implies --no-measure)")
    ap.add_argument("--limit-train", type=int, metavar="N", help="train on the first N training images only (smoke runs)")
    ap.add_argument("--no-measure", action="store_true", help="skip `node models/measure.js` at the end")
    args = ap.parse_args()
    global OUT, FIXTURES
    if args.scratch:
        OUT = os.path.abspath(args.scratch)
        FIXTURES = os.path.join(OUT, "fixtures")
        args.no_measure = True

    names = [n for o in args.only for n in o.split(",") if n] or list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        die(f"unknown model(s) {unknown}; choose from {list(RECIPES)}")

    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    blas_hint()
    print(f"PyTorch {torch.__version__}, onnx {onnx.__version__}, {THREADS} threads, seed {args.seed}", flush=True)
    try:
        raw = fdata.load()
    except fdata.DatasetMissing as e:
        die(str(e))
    ds = {
        "train_x": torch.from_numpy(raw["train_images"].copy()).unsqueeze(1),
        "train_y": torch.from_numpy(raw["train_labels"].astype(np.int64)),
        "test_x": torch.from_numpy(raw["test_images"].copy()).unsqueeze(1),
        "test_y": torch.from_numpy(raw["test_labels"].astype(np.int64)),
        "n_train": raw["train_images"].shape[0],
    }
    if args.limit_train:
        ds["train_x"], ds["train_y"] = ds["train_x"][:args.limit_train], ds["train_y"][:args.limit_train]
        ds["n_train"] = ds["train_x"].shape[0]
    write_fixtures(ds)
    cuda_commit = load_cuda_table()["source_commit"]

    results = []
    t_all = time.time()
    for name in names:
        recipe = RECIPES[name]
        epochs = args.epochs or recipe["epochs"]
        cache = os.path.join(OUT, ".cache", f"{name}.pt")
        if args.export_only:
            if not os.path.exists(cache):
                die(f"--export-only: no cached weights at {cache}; train {name} first")
            saved = torch.load(cache)
            model = ARCHS[name](**recipe["kwargs"])
            model.load_state_dict(saved["state_dict"])
            history, train_s, epochs = saved["history"], saved["train_s"], saved["epochs"]
            train_threads = saved.get("threads", THREADS)
        else:
            model, history, train_s = train_one(name, recipe, ds, epochs, args.seed)
            train_threads = THREADS
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            torch.save({"state_dict": model.state_dict(), "history": history, "train_s": train_s,
                        "epochs": epochs, "seed": args.seed, "threads": THREADS}, cache)
        model.eval()
        test_acc = accuracy(model, ds["test_x"], ds["test_y"])
        acc1000 = accuracy(model, ds["test_x"][:N_FIXTURE], ds["test_y"][:N_FIXTURE])
        path = os.path.join(OUT, name, "1", "model.onnx")
        m = export(model, path)
        facts = check_graph(m, path, expect_lstm=name in ("fashion-lstm", "fashion-hybrid"))
        assert facts["outputs"].keys() == set(output_names(model)) or list(facts["outputs"]) == output_names(model)
        write_reference(name, model, ds)
        cfg = write_config(name, recipe, model, facts, test_acc, train_s, epochs, args.seed, cuda_commit)
        log_path = os.path.join(OUT, name, "training.json")
        kept = {}
        if args.export_only and os.path.exists(log_path):  # same weights: onnxruntime results still hold
            with open(log_path) as f:
                kept = {k: v for k, v in json.load(f).items() if k == "onnxruntime_cpu"}
        with open(log_path, "w") as f:
            json.dump({"name": name, "date": datetime.date.today().isoformat(), "seed": args.seed,
                       "torch": torch.__version__, "onnx": onnx.__version__, "threads": train_threads,
                       "recipe": recipe, "epochs": epochs, "train_wall_s": round(train_s, 1),
                       "test_accuracy_full_10000": test_acc, "test_accuracy_first_1000": acc1000,
                       "onnx_op_counts": facts["op_counts"], "history": history, **kept}, f, indent=1)
            f.write("\n")
        print(f"  [{name}] test accuracy {test_acc:.4f} (first 1000: {acc1000:.4f}), target {recipe['target']}, "
              f"{facts['size_bytes'] / 1024:.0f} KiB, ops: {', '.join(facts['op_types'])}", flush=True)
        results.append(dict(name=name, acc=test_acc, acc1000=acc1000, target=recipe["target"],
                            params=cfg["card"]["parameters"], mflops=cfg["card"]["flops_per_image"] / 1e6,
                            kib=facts["size_bytes"] / 1024, train_s=train_s))

    print(f"\n{'model':<18} {'test acc':>8} {'first1k':>8} {'target':>7} {'met':>4} {'params':>9} {'MFLOPs':>7} {'KiB':>6} {'train':>7}")
    for r in results:
        print(f"{r['name']:<18} {r['acc']:>8.4f} {r['acc1000']:>8.4f} {r['target']:>7.3f} "
              f"{'yes' if r['acc'] >= r['target'] else 'NO':>4} {r['params']:>9,} {r['mflops']:>7.2f} "
              f"{r['kib']:>6.0f} {fmt_s(r['train_s']):>7}")
    print(f"total wall time {fmt_s(time.time() - t_all)}", flush=True)

    if args.no_measure:
        print("skipped CPU timing; run:  node models/measure.js")
        return
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(ROOT, "node_modules", "onnxruntime-node")):
        print("note: node or node_modules/onnxruntime-node not found; CPU timing/cost/cards not refreshed.\n"
              "      After `npm install`, run:  node models/measure.js")
        return
    print("\nrunning node models/measure.js (CPU timing, cost, model cards) ...", flush=True)
    rc = subprocess.call([node, os.path.join(HERE, "measure.js")], cwd=ROOT)
    if rc:
        die(f"models/measure.js exited with {rc}")


if __name__ == "__main__":
    main()
