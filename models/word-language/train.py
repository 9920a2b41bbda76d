#!/usr/bin/env python3
"""
Trains word-language: which of six languages a single word is written in
(en, de, fr, es, it, nl), from Debian's spelling word lists. Offline, numpy
only; `export.js` beside this file turns the result into 1/model.onnx.

  sudo apt-get install wamerican wngerman wfrench wspanish witalian wdutch
  python3 models/word-language/train.py      # writes training.json + heldout.txt (not committed)
  node models/word-language/export.js        # writes 1/model.onnx, measures it, fills config.json's card

Data: every list is lowercased, kept only if alphabetic and 3-24 letters,
and words found in more than one language's list are dropped (they are not
evidence for either). A word goes to the held-out set when the first byte of
sha256(language + word) is < 26 (about 10%); the split never looks at the
model. Training draws at most 30,000 words per language (a fixed seed) so no
list dominates; the held-out set is balanced the same way (at most 3,000
per language) and scored once, after training.

Model: multinomial logistic regression over the presence of K character
n-grams (n = 1..3, with ^ and $ marking the word's start and end), each
feature one RE2 full match in the graph (`RegexFullMatch`, opset 20).
Features are the K n-grams with the most mutual information with the
language on the training words.
"""
import hashlib
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
LISTS = [
    ("en", "/usr/share/dict/american-english"),
    ("de", "/usr/share/dict/ngerman"),
    ("fr", "/usr/share/dict/french"),
    ("es", "/usr/share/dict/spanish"),
    ("it", "/usr/share/dict/italian"),
    ("nl", "/usr/share/dict/dutch"),
]
FEATURES = 320
TRAIN_PER_LANG = 30000
HELDOUT_PER_LANG = 3000
SEED = 1234
EPOCHS = 400
LR = 2.0
L2 = 1e-5


def read_words(path):
    words = set()
    with open(path, encoding="utf-8", errors="strict") as f:
        for line in f:
            w = line.strip().lower()
            if 3 <= len(w) <= 24 and w.isalpha():
                words.add(w)
    return words


def ngrams(word):
    padded = "^" + word + "$"
    out = set()
    for n in (1, 2, 3):
        for i in range(len(padded) - n + 1):
            g = padded[i:i + n]
            if g in ("^", "$") or (g.startswith("^") and g.endswith("$")):
                continue
            out.add(g)
    return out


def pattern(gram):
    """The RE2 full-match pattern true exactly when the word contains the n-gram (case-insensitive)."""
    if gram.startswith("^"):
        return "(?is)" + gram[1:] + ".*"
    if gram.endswith("$"):
        return "(?is).*" + gram[:-1]
    return "(?is).*" + gram + ".*"


def held_out(lang, word):
    return hashlib.sha256((lang + word).encode("utf-8")).digest()[0] < 26


def main():
    per_lang = {lang: read_words(path) for lang, path in LISTS}
    seen = {}
    for lang, words in per_lang.items():
        for w in words:
            seen[w] = seen.get(w, 0) + 1
    rng = np.random.default_rng(SEED)
    train, test = [], []
    sizes = {}
    for k, (lang, _) in enumerate(LISTS):
        unique = sorted(w for w in per_lang[lang] if seen[w] == 1)
        tr = [w for w in unique if not held_out(lang, w)]
        te = [w for w in unique if held_out(lang, w)]
        tr = [tr[i] for i in sorted(rng.choice(len(tr), min(TRAIN_PER_LANG, len(tr)), replace=False))]
        te = [te[i] for i in sorted(rng.choice(len(te), min(HELDOUT_PER_LANG, len(te)), replace=False))]
        sizes[lang] = {"list": len(per_lang[lang]), "unique": len(unique), "train": len(tr), "heldout": len(te)}
        train += [(w, k) for w in tr]
        test += [(w, k) for w in te]
    print("words:", json.dumps(sizes), file=sys.stderr)

    classes = len(LISTS)
    # Mutual information of each n-gram's presence with the language, on training words.
    counts = {}
    class_totals = np.zeros(classes)
    for w, k in train:
        class_totals[k] += 1
        for g in ngrams(w):
            c = counts.get(g)
            if c is None:
                c = counts[g] = np.zeros(classes)
            c[k] += 1
    n = len(train)
    p_class = class_totals / n

    def mutual_information(c):
        mi = 0.0
        present = c.sum()
        for k in range(classes):
            for joint, marginal in ((c[k], present), (class_totals[k] - c[k], n - present)):
                if joint > 0:
                    mi += joint / n * math.log(joint * n / (marginal * class_totals[k]))
        return mi

    ranked = sorted((g for g, c in counts.items() if c.sum() >= 20), key=lambda g: (-mutual_information(counts[g]), g))
    grams = ranked[:FEATURES]
    index = {g: i for i, g in enumerate(grams)}

    def featurize(items):
        x = np.zeros((len(items), len(grams)), dtype=np.float32)
        y = np.zeros(len(items), dtype=np.int64)
        for r, (w, k) in enumerate(items):
            for g in ngrams(w):
                j = index.get(g)
                if j is not None:
                    x[r, j] = 1.0
            y[r] = k
        return x, y

    x, y = featurize(train)
    onehot = np.eye(classes, dtype=np.float32)[y]
    w = np.zeros((len(grams), classes), dtype=np.float32)
    b = np.log(p_class).astype(np.float32)
    # Full-batch gradient descent with Nesterov momentum on the mean cross-entropy + L2.
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    log = []
    for epoch in range(EPOCHS):
        lw, lb = w + 0.9 * vw, b + 0.9 * vb
        z = x @ lw + lb
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / len(x)
        vw = 0.9 * vw - LR * (x.T @ g + L2 * lw)
        vb = 0.9 * vb - LR * g.sum(axis=0)
        w, b = w + vw, b + vb
        if epoch % 50 == 0 or epoch == EPOCHS - 1:
            loss = float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))
            acc = float(np.mean(p.argmax(axis=1) == y))
            log.append({"epoch": epoch, "loss": round(loss, 4), "train_accuracy": round(acc, 4)})
            print(log[-1], file=sys.stderr)

    xt, yt = featurize(test)
    predicted = (xt @ w + b).argmax(axis=1)
    accuracy = float(np.mean(predicted == yt))
    confusion = np.zeros((classes, classes), dtype=int)
    for t, p_ in zip(yt, predicted):
        confusion[t, p_] += 1
    per_class = {LISTS[k][0]: round(float(confusion[k, k] / confusion[k].sum()), 4) for k in range(classes)}
    print("held-out accuracy (numpy):", accuracy, per_class, file=sys.stderr)

    with open(os.path.join(HERE, "heldout.txt"), "w", encoding="utf-8") as f:
        for word, k in test:
            f.write(f"{LISTS[k][0]}\t{word}\n")
    result = {
        "labels": [lang for lang, _ in LISTS],
        "ngrams": grams,
        "patterns": [pattern(g) for g in grams],
        "weights": [[round(float(v), 6) for v in row] for row in w],
        "bias": [round(float(v), 6) for v in b],
        "recipe": {"features": FEATURES, "train_per_lang": TRAIN_PER_LANG, "heldout_per_lang": HELDOUT_PER_LANG, "seed": SEED,
                   "epochs": EPOCHS, "lr": LR, "momentum": 0.9, "l2": L2, "heldout_rule": "sha256(lang + word)[0] < 26"},
        "words": sizes,
        "log": log,
        "heldout_accuracy_numpy": round(accuracy, 4),
        "heldout_accuracy_per_language_numpy": per_class,
        "confusion": confusion.tolist(),
    }
    with open(os.path.join(HERE, "training.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
