"""Train a small byte-level GPT and report val_bpb: the tinygpt target's evolving file.

Read it top to bottom: the model, the optimizer, the LR schedule, the constants that configure
the run, setup, the training loop and a summary. The trusted harness (``harness.py``) owns the
data, the budget, the evaluation and the result file; this file builds and trains the model.
Run it by hand with ``EVO_RESULT=/tmp/r.json EVO_SEED=0 python train.py``.
"""

import harness
import torch
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu}


# evo: region=model
class RMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned gain."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


# evo: region=model
def rope_tables(seq_len: int, head_dim: int, base: float = 10000.0):
    """cos/sin tables of rotary position embeddings, each (seq_len, head_dim // 2)."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.outer(torch.arange(seq_len).float(), inv_freq)
    return angles.cos(), angles.sin()


# evo: region=model
def apply_rope(x, cos, sin):
    """Rotate the two halves of each head's channels by position-dependent angles."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


# evo: region=model
class CausalSelfAttention(nn.Module):
    """Multi-head attention where position t attends to positions <= t only."""

    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.head_dim = n_embd // n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.proj = nn.Linear(n_embd, n_embd, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))


# evo: region=model
class MLP(nn.Module):
    """Two linear layers with a pointwise activation between them."""

    def __init__(self, n_embd: int, hidden: int, activation: str):
        super().__init__()
        self.fc = nn.Linear(n_embd, hidden, bias=False)
        self.proj = nn.Linear(hidden, n_embd, bias=False)
        self.act = ACTIVATIONS[activation]

    def forward(self, x):
        return self.proj(self.act(self.fc(x)))


# evo: region=model
class Block(nn.Module):
    """Pre-norm transformer block: attention, then MLP, each added to the residual stream."""

    def __init__(self, n_embd: int, n_head: int, hidden: int, activation: str):
        super().__init__()
        self.norm1 = RMSNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.norm2 = RMSNorm(n_embd)
        self.mlp = MLP(n_embd, hidden, activation)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.mlp(self.norm2(x))


# evo: region=model
class GPT(nn.Module):
    """Pre-norm decoder-only transformer over bytes: ``model(idx) -> logits`` (B, T, vocab)."""

    def __init__(self, vocab_size, depth, n_embd, n_head, hidden, activation, max_seq_len,
                 init_std):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, n_embd)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, hidden, activation)
                                    for _ in range(depth))
        self.norm = RMSNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        cos, sin = rope_tables(max_seq_len, n_embd // n_head)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                # Residual-branch outputs are scaled down so the stream's variance stays O(1).
                std = init_std / (2 * depth) ** 0.5 if name.endswith("proj.weight") else init_std
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx):
        T = idx.shape[1]
        cos, sin = self.cos[:T], self.sin[:T]
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.lm_head(self.norm(x))


# evo: region=optimizer
def make_optimizer(model, lr, weight_decay, betas, fused):
    """AdamW; weight decay on matrices only (not on norms' gains)."""
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": matrices, "weight_decay": weight_decay},
              {"params": vectors, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)


# evo: region=schedule
def lr_multiplier(progress):
    """Linear warmup over WARMUP_FRAC of the budget, flat, then linear warmdown to FINAL_LR_FRAC."""
    if progress < WARMUP_FRAC:
        return (progress + 1e-3) / (WARMUP_FRAC + 1e-3)
    if progress > 1.0 - WARMDOWN_FRAC:
        left = (1.0 - progress) / WARMDOWN_FRAC
        return FINAL_LR_FRAC + (1.0 - FINAL_LR_FRAC) * left
    return 1.0


# evo: region=model
DEPTH = 2  # transformer blocks (times the fidelity's scale)
N_EMBD = 128  # model width (times scale); rounded down to a multiple of N_HEAD
N_HEAD = 2  # attention heads (times scale)
MLP_RATIO = 4  # MLP hidden width / model width
ACTIVATION = "gelu"  # evo: choice(gelu, relu, silu)
INIT_STD = 0.02  # std of the normal weight init

# evo: region=optimizer
LEARNING_RATE = 1e-3  # peak AdamW learning rate
WEIGHT_DECAY = 0.1  # decoupled weight decay on matrices
ADAM_BETAS = (0.9, 0.95)  # AdamW betas
GRAD_CLIP = 1.0  # max global grad norm (0 disables clipping)

# evo: region=schedule
WARMUP_FRAC = 0.1  # fraction of the budget spent ramping the LR up
WARMDOWN_FRAC = 0.1  # fraction of the budget spent ramping the LR down
FINAL_LR_FRAC = 0.1  # LR at the end, as a fraction of the peak

# evo: region=data
BATCH_SIZE = 16  # sequences per step (times scale)
SEQ_LEN = 128  # training context in bytes (times scale)

COMPILE = True  # torch.compile the model when training on CUDA

# setup: the fidelity's scale grows every size constant; the values above are scale 1
h = harness.setup()
depth = DEPTH * h.scale
n_head = N_HEAD * h.scale
head_dim = max(2, N_EMBD // N_HEAD // 2 * 2)  # even, for RoPE
n_embd = n_head * head_dim
batch_size = BATCH_SIZE * h.scale
seq_len = SEQ_LEN * h.scale
model = GPT(h.vocab_size, depth, n_embd, n_head, MLP_RATIO * n_embd, ACTIVATION,
            max(seq_len, h.eval_seq_len), INIT_STD).to(h.device)
optimizer = make_optimizer(model, LEARNING_RATE, WEIGHT_DECAY, ADAM_BETAS, fused=h.cuda)
train_model = torch.compile(model) if COMPILE and h.cuda else model
h.begin(model)

# the training loop: the harness says when the budget is spent
while not h.done():
    lr = LEARNING_RATE * lr_multiplier(h.progress())
    for group in optimizer.param_groups:
        group["lr"] = lr
    x, y = h.next_batch(batch_size, seq_len)
    with h.autocast():
        logits = train_model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
    loss.backward()
    if GRAD_CLIP > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    train_loss = h.step_done(loss)
    if h.steps % 50 == 0:
        print(f"step {h.steps:5d} | loss {train_loss:.4f} | lr {lr:.2e}", flush=True)

# summary: the harness scores the model and writes the result file
summary = h.finish(model)
for key, value in summary.items():
    print(f"{key}: {value}")
