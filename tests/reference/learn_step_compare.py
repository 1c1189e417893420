"""learn_step_compare: the engine's pretrain steps against transformers' Llama on one real, padded batch.

Issue 5's check that the copy task's plateau is not an engine bug. Make, with the engine, three pretrain stages
on the same 16-example data set (batch 16, lr 1e-3, schedule constant, warmup 0, so every epoch is one step on
the same batch): epochs 0, 1 and 50; `pulse-pipe cat <stage> model` each to a safetensors file. This script
loads the epochs-0 weights into LlamaForCausalLM (fp64), takes 1 and 50 AdamW steps (betas 0.9/0.999, eps
1e-8, clip 1.0) with the answer-only loss, and prints the largest parameter difference from the engine's.

    .venv/bin/python tests/reference/learn_step_compare.py TOK.json DATA.jsonl P0 P1 P50

Measured (copy examples of 33-43 tokens): max |torch - engine| 1.2e-5 after 1 and after 50 steps, mean loss
over the 50 steps 1.51122 in both, loss after them 0.0294231 in both.
"""

import sys

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

import learn_copy_torch as L


class Shape:
    hidden, intermediate, layers, heads, std, seed = 128, 344, 4, 4, 0.02, 1


def load_engine(path, vocab):
    m = L.make_model(Shape, vocab).double()
    sd = {
        k.replace("model.language_model.", "model."): v.double()
        for k, v in load_file(path).items()
        if "language_model" in k or k == "lm_head.weight"
    }
    r = m.load_state_dict(sd, strict=False)
    if r.unexpected_keys or any("rotary" not in k for k in r.missing_keys):
        sys.exit(f"learn_step_compare: {path} does not fit the decoder: {r}")
    return m


def max_diff(m1, m2):
    s2 = dict(m2.named_parameters())
    return max((p - s2[k]).abs().max().item() for k, p in m1.named_parameters())


def main():
    tok_path, data, p0, p1, p50 = sys.argv[1:6]
    torch.set_num_threads(1)
    tok = Tokenizer.from_file(tok_path)
    seqs = [L.encode(tok, x["prompt"], x["answer"]) for x in L.load(data)]
    vocab = tok.get_vocab_size()
    m = load_engine(p0, vocab)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ids, mask, labels = L.collate(seqs, range(len(seqs)), tok.token_to_id("<pad>"))
    losses = []
    for step in range(50):
        loss = L.answer_loss(m(input_ids=ids, attention_mask=mask).logits, labels)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step == 0:
            print(f"step 1: loss {losses[0]:.6f}, max |torch - engine| {max_diff(m, load_engine(p1, vocab)):.3g}")
    e50 = load_engine(p50, vocab)
    with torch.no_grad():
        after = [L.answer_loss(x(input_ids=ids, attention_mask=mask).logits, labels).item() for x in (m, e50)]
    print(f"50 steps: mean loss {sum(losses) / 50:.6f}, max |torch - engine| {max_diff(m, e50):.3g}, "
          f"loss after: torch {after[0]:.7f} engine {after[1]:.7f}")


if __name__ == "__main__":
    main()
