"""learn_copy_torch: does the tiny LLaVA decoder learn the multiple-choice "copy" task in PyTorch?

The reference for issue 5's blocker (the engine's pretrain never gets past chance on "Which option is X?").
It trains transformers' LlamaForCausalLM with the pretrain stage's decoder config on the same examples, with
the same tokenizer, prompt layout (<s> prompt answer </s>), answer-only loss (mean over the batch's target
tokens), AdamW (eps 1e-8, no weight decay, clip 1.0), init N(0, 0.02) and length-grouped right-padded batches,
and prints the held-out accuracy (the letter A-D with the highest logit after the prompt) as it goes.

    .venv/bin/python tests/reference/learn_copy_torch.py --tokenizer TOK.json --train copy_train.jsonl \
        --test copy_test_items.jsonl --steps 4000

learn_step_compare.py checks the engine's steps against this model on one batch of these examples.
"""

import argparse
import json
import math
import random
import time

import torch
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

IGNORE = -100


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
    p.add_argument("--schedule", default="constant", choices=["constant", "cosine"])
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--intermediate", type=int, default=344)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--std", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--full-loss", action="store_true", help="loss on every token, not just the answer")
    return p.parse_args()


def encode(tok, prompt, answer):
    """<s> prompt [answer </s>], labels only on the answer and </s> (engine/prompt.c's layout)."""
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    p = [bos] + tok.encode(prompt, add_special_tokens=False).ids
    if answer is None:
        return p, None
    a = tok.encode(answer, add_special_tokens=False).ids + [eos]
    return p + a, [IGNORE] * len(p) + a


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def epoch_batches(seqs, batch, rng):
    """Shuffle, sort windows of 32 batches by length (longest first), visit the batches shuffled."""
    idx = list(range(len(seqs)))
    rng.shuffle(idx)
    w = 32 * batch
    for at in range(0, len(idx), w):
        idx[at : at + w] = sorted(idx[at : at + w], key=lambda i: -len(seqs[i][0]))
    out = [idx[at : at + batch] for at in range(0, len(idx), batch)]
    rng.shuffle(out)
    return out


def collate(seqs, rows, pad):
    t = max(len(seqs[i][0]) for i in rows)
    ids = torch.full((len(rows), t), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), t), dtype=torch.long)
    labels = torch.full((len(rows), t), IGNORE, dtype=torch.long)
    for r, i in enumerate(rows):
        x, y = seqs[i]
        ids[r, : len(x)] = torch.tensor(x)
        mask[r, : len(x)] = 1
        labels[r, : len(y)] = torch.tensor(y)
    return ids, mask, labels


def answer_loss(logits, labels):
    """Mean cross-entropy over the batch's target tokens; position j predicts label j + 1."""
    lg = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    y = labels[:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(lg, y, ignore_index=IGNORE, reduction="mean")


def make_model(a, vocab):
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=a.hidden,
        intermediate_size=a.intermediate,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        num_key_value_heads=a.heads,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        initializer_range=a.std,
        pad_token_id=None,
        attn_implementation="eager",
    )
    torch.manual_seed(a.seed)
    m = LlamaForCausalLM(cfg)
    with torch.no_grad():  # the engine's init: every matrix N(0, std), norms 1
        for name, p in m.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, a.std)
    return m


@torch.no_grad()
def accuracy(m, tok, items):
    letters = [tok.token_to_id(c) for c in "ABCD"]
    m.eval()
    right = 0
    for at in range(0, len(items), 64):
        rows = items[at : at + 64]
        seqs = [(encode(tok, x["prompt"], None)[0], []) for x in rows]
        ids, mask, _ = collate(seqs, range(len(seqs)), tok.token_to_id("<pad>"))
        logits = m(input_ids=ids, attention_mask=mask).logits
        last = mask.sum(1) - 1
        sel = logits[torch.arange(len(rows)), last][:, letters]
        right += sum(int(sel[r].argmax()) == "ABCD".index(x["answer"]) for r, x in enumerate(rows))
    m.train()
    return right / len(items)


def lr_at(a, step):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    if a.schedule == "cosine":
        f = (step - a.warmup) / max(1, a.steps - a.warmup)
        return a.lr * 0.5 * (1 + math.cos(math.pi * f))
    return a.lr


def main():
    a = parse_args()
    torch.set_num_threads(a.threads)
    tok = Tokenizer.from_file(a.tokenizer)
    train = load(a.train)
    seqs = [encode(tok, x["prompt"], x["answer"]) for x in train]
    if a.full_loss:  # what an example with an empty prompt trains in the engine: every token after <s>
        seqs = [(x, [IGNORE] + x[1:]) for x, _ in seqs]
    test = load(a.test)
    seen = train[:300]  # accuracy on training prompts: memorising vs. learning the rule
    m = make_model(a, tok.get_vocab_size())
    opt = torch.optim.AdamW(m.parameters(), lr=a.lr, betas=(0.9, a.beta2), eps=1e-8, weight_decay=0.0)
    rng = random.Random(a.seed)
    pad = tok.token_to_id("<pad>")
    step, recent, t0 = 0, [], time.time()
    print(f"config {vars(a)}", flush=True)
    while step < a.steps:
        for rows in epoch_batches(seqs, a.batch, rng):
            if step >= a.steps:
                break
            ids, mask, labels = collate(seqs, rows, pad)
            for g in opt.param_groups:
                g["lr"] = lr_at(a, step)
            loss = answer_loss(m(input_ids=ids, attention_mask=mask).logits, labels)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
            recent.append(loss.item())
            step += 1
            if step % a.eval_every == 0 or step == a.steps:
                print(
                    f"step {step} loss {sum(recent) / len(recent):.4f} train_acc {accuracy(m, tok, seen):.3f} "
                    f"test_acc {accuracy(m, tok, test):.3f} ({time.time() - t0:.0f}s)",
                    flush=True,
                )
                recent = []


if __name__ == "__main__":
    main()
