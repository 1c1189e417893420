"""Writes the fixture test_engine_losses reads: the unlearning losses of engine/unlearn_loss.h computed by
torch autograd in fp64 on small random fp32 inputs (results stored as fp32), so the C code is checked against an
independent implementation of the same formulas.

  tests/data/losses/losses.safetensors
    logits, ref_logits [B,T,V]; labels [B,T] (F32, -100 = not a target: prompt and right padding)
    dS [B]: the upstream gradient given to the per-sequence log-probability; S [B]; S_ref [B] (S of ref_logits)
    dlogits_S: d(sum_i dS_i S_i)/d logits
    kl, dlogits_kl: mean over target positions of KL(p_ref || p) and its gradient w.r.t. logits only
    npo_<k>, dlogits_npo_<k>, beta_<k> for k = 0, 1, 2: -(2/beta) mean_i log sigmoid(-beta (S_i - S_ref_i))

Labels follow transformers' causal LM convention: the logits at t predict labels[t+1]; -100 is ignored.

Run from the repository root:  .venv/bin/python tests/reference/make_losses_fixture.py
"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = "tests/data/losses"
B, T, V = 3, 9, 13
BETAS = [0.1, 1.0, 5.0]


def make_labels(g):
    """Prompt (-100) first, then answer tokens, then right padding (-100)."""
    labels = torch.full((B, T), -100, dtype=torch.long)
    for b, (prompt, valid) in enumerate([(3, 9), (2, 6), (4, 7)]):
        labels[b, prompt:valid] = torch.randint(0, V, (valid - prompt,), generator=g)
    return labels


def shifted(logits, labels):
    """Log-probabilities of the shifted targets and their mask, [B, T-1]."""
    tgt = labels[:, 1:]
    on = tgt != -100
    logp = F.log_softmax(logits[:, :-1], dim=-1)
    picked = logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * on, on


def seq_logprob(logits, labels):
    picked, _ = shifted(logits, labels)
    return picked.sum(dim=1)


def grad_of(fn, logits):
    x = logits.clone().requires_grad_(True)
    y = fn(x)
    (g,) = torch.autograd.grad(y, x)
    return y.detach(), g


def main():
    g = torch.Generator().manual_seed(7)
    logits = (torch.randn(B, T, V, generator=g, dtype=torch.float64) * 2).float().double()
    ref = (logits + 0.5 * torch.randn(B, T, V, generator=g, dtype=torch.float64)).float().double()
    labels = make_labels(g)
    dS = torch.randn(B, generator=g, dtype=torch.float64).float().double()
    out = {"logits": logits, "ref_logits": ref, "labels": labels.double(), "dS": dS}

    out["S"], out["dlogits_S"] = grad_of(lambda x: (seq_logprob(x, labels) * dS).sum(), logits)
    out["S"] = seq_logprob(logits, labels)
    out["S_ref"] = seq_logprob(ref, labels)

    def kl(x):
        _, on = shifted(x, labels)
        lp, lr = F.log_softmax(x[:, :-1], -1), F.log_softmax(ref[:, :-1], -1)
        per = (lr.exp() * (lr - lp)).sum(-1)
        return (per * on).sum() / on.sum()

    out["kl"], out["dlogits_kl"] = grad_of(kl, logits)

    for k, beta in enumerate(BETAS):
        def npo(x, beta=beta):
            d = seq_logprob(x, labels) - out["S_ref"]
            return -(2.0 / beta) * F.logsigmoid(-beta * d).mean()

        out[f"npo_{k}"], out[f"dlogits_npo_{k}"] = grad_of(npo, logits)
        out[f"beta_{k}"] = torch.tensor([beta], dtype=torch.float64)

    os.makedirs(OUT, exist_ok=True)
    save_file({k: v.reshape(-1).float().contiguous() if v.dim() == 0 else v.float().contiguous()
               for k, v in out.items()}, f"{OUT}/losses.safetensors")


if __name__ == "__main__":
    main()
