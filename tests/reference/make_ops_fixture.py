"""Writes tests/data/ops_fixture.json: inputs, outputs and gradients of the engine's operations computed by
PyTorch and transformers (the independent reference for tests/unit/test_engine_ops.c).

Every case uses the loss L = sum(out * R) with a random R, so the gradients are those of the C test's
backward calls with dout = R. Layouts follow engine/ops.h ([B,T,NH,HS] for attention and RoPE). Run from the
repository root with a venv holding torch and transformers:

    .venv/bin/python tests/reference/make_ops_fixture.py
"""

import json
import os
import sys

import torch
import torch.nn.functional as F
from transformers import LlamaConfig
from transformers.activations import ACT2FN
from transformers.models.llama.modeling_llama import (
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
    eager_attention_forward,
)

torch.manual_seed(1234)


def rand(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo).requires_grad_(True)


def flat(t):
    """A tensor as a list of floats (float32 values print exactly as Python floats)."""
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def case(**tensors):
    return {k: (flat(v) if torch.is_tensor(v) else v) for k, v in tensors.items()}


def backward(out, r, *inputs):
    (out * r).sum().backward()
    return [x.grad for x in inputs]


def rmsnorm():
    n, c = 4, 16
    x, r = rand(n, c, lo=-2, hi=2), torch.rand(n, c) * 2 - 1
    mod = LlamaRMSNorm(c, eps=1e-5)
    with torch.no_grad():
        mod.weight.copy_(torch.rand(c) + 0.5)
    out = mod(x)
    dx, dw = backward(out, r, x, mod.weight)
    return case(n=n, c=c, eps=1e-5, x=x, w=mod.weight, r=r, out=out, dx=dx, dw=dw)


def layernorm():
    n, c = 4, 16
    x, r = rand(n, c, lo=-2, hi=2), torch.rand(n, c) * 2 - 1
    mod = torch.nn.LayerNorm(c, eps=1e-5)
    with torch.no_grad():
        mod.weight.copy_(torch.rand(c) + 0.5)
        mod.bias.copy_(torch.rand(c) - 0.5)
    out = mod(x)
    dx, dw, db = backward(out, r, x, mod.weight, mod.bias)
    return case(n=n, c=c, eps=1e-5, x=x, w=mod.weight, b=mod.bias, r=r, out=out, dx=dx, dw=dw, db=db)


def rope():
    b, t, nh, hs, theta = 1, 6, 2, 8, 10000.0
    pos = torch.tensor([[0, 1, 2, 7, 100, 1000]])
    x, r = rand(b, t, nh, hs), torch.rand(b, t, nh, hs) * 2 - 1
    cfg = LlamaConfig(hidden_size=nh * hs, num_attention_heads=nh, rope_theta=theta)
    cos, sin = LlamaRotaryEmbedding(cfg)(x, pos)
    out, _ = apply_rotary_pos_emb(x, x, cos, sin, unsqueeze_dim=2)  # [B,T,NH,HS]: heads on dim 2
    (dx,) = backward(out, r, x)
    return case(b=b, t=t, nh=nh, hs=hs, theta=theta, pos=pos.reshape(-1).tolist(), x=x, r=r, out=out, dx=dx)


class _Eager(torch.nn.Module):
    num_key_value_groups = 1


def attention(causal, lens):
    """HF's eager attention; rows of padding queries are zeroed (the engine's convention: they see nothing)."""
    b, t, nh, hs = 2, 5, 2, 4
    q, k, v = rand(b, t, nh, hs, lo=-1.5, hi=1.5), rand(b, t, nh, hs, lo=-1.5, hi=1.5), rand(b, t, nh, hs)
    r = torch.rand(b, t, nh, hs) * 2 - 1
    pos = torch.arange(t)
    keep = pos[None, None, :] < torch.tensor(lens)[:, None, None]  # [B,1,T] key valid
    if causal:
        keep = keep & (pos[None, :, None] >= pos[None, None, :])  # [B,T,T]
    mask = torch.zeros(b, 1, t, t).masked_fill(~keep[:, None].expand(b, 1, t, t), torch.finfo(torch.float32).min)
    out, _ = eager_attention_forward(_Eager().eval(), q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                     mask, hs ** -0.5)
    qvalid = (pos[None, :] < torch.tensor(lens)[:, None]).float()[:, :, None, None]
    out = out * qvalid
    dq, dk, dv = backward(out, r, q, k, v)
    return case(b=b, t=t, nh=nh, hs=hs, causal=int(causal), len=list(lens), q=q, k=k, v=v, r=r, out=out, dq=dq,
                dk=dk, dv=dv)


def activation(name):
    n = 33
    x, r = rand(n, lo=-4, hi=4), torch.rand(n) * 2 - 1
    out = ACT2FN[name](x)
    (dx,) = backward(out, r, x)
    return case(n=n, x=x, r=r, out=out, dx=dx)


def swiglu():
    n = 33
    g, u, r = rand(n, lo=-4, hi=4), rand(n, lo=-2, hi=2), torch.rand(n) * 2 - 1
    out = F.silu(g) * u
    dg, du = backward(out, r, g, u)
    return case(n=n, gate=g, up=u, r=r, out=out, dgate=dg, dup=du)


def logprob():
    n, v = 5, 13
    x, r = rand(n, v, lo=-3, hi=3), torch.rand(n) * 2 - 1
    target = torch.tensor([0, 12, 5, 5, 7])
    mask = torch.tensor([1, 1, 0, 1, 1])
    out = F.log_softmax(x, dim=-1).gather(1, target[:, None])[:, 0] * mask
    (dx,) = backward(out, r, x)
    return case(n=n, v=v, target=target.tolist(), mask=mask.tolist(), logits=x, r=r, out=out, dx=dx)


def kl():
    n, v = 5, 13
    x, ref, r = rand(n, v, lo=-3, hi=3), torch.rand(n, v) * 6 - 3, torch.rand(n) * 2 - 1
    mask = torch.tensor([1, 0, 1, 1, 1])
    lp, lq = F.log_softmax(x, dim=-1), F.log_softmax(ref, dim=-1)
    out = (lq.exp() * (lq - lp)).sum(-1) * mask
    (dx,) = backward(out, r, x)
    return case(n=n, v=v, mask=mask.tolist(), logits=x, ref=ref, r=r, out=out, dx=dx)


def adamw():
    n, lr, b1, b2, eps, wd = 37, 1e-2, 0.9, 0.999, 1e-8, 0.1
    p = torch.nn.Parameter(torch.rand(n) * 2 - 1)
    p0 = p.detach().clone()
    opt = torch.optim.AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, foreach=False, fused=False)
    grads = []
    for _ in range(3):
        g = torch.rand(n) * 2 - 1
        grads.append(g)
        p.grad = g.clone()
        opt.step()
    st = opt.state[p]
    return case(n=n, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd, p0=p0, g=torch.stack(grads), p=p,
                m=st["exp_avg"], v=st["exp_avg_sq"])


def main():
    fixture = {
        "torch": torch.__version__,
        "rmsnorm": rmsnorm(),
        "layernorm": layernorm(),
        "rope": rope(),
        "attention_causal": attention(True, [5, 3]),
        "attention_full": attention(False, [5, 5]),
        "gelu": activation("gelu"),
        "quick_gelu": activation("quick_gelu"),
        "swiglu": swiglu(),
        "logprob": logprob(),
        "kl": kl(),
        "adamw": adamw(),
    }
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "data", "ops_fixture.json")
    with open(path, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
