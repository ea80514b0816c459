#!/usr/bin/python3
"""PyTorch twin of bench/train-step.ts: the same Llama model, batch, ORPO loss and AdamW step, float32 on the CPU.

Written the way a tuned PyTorch user would write it: LlamaForCausalLM semantics in plain torch (RMSNorm, rotate-half
RoPE, grouped-query attention, SwiGLU, untied head), F.scaled_dot_product_attention(is_causal=True) when this torch
has it, per-token log-probs from the fused F.cross_entropy(reduction='none'), TRL's ORPO loss, clip_grad_norm_ and
torch.optim.AdamW (fused or foreach when available).

Run by the bench with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset and OPENBLAS/OMP/MKL_NUM_THREADS = --threads.
Reads the initial weights from a safetensors file (a few lines of struct + numpy, no safetensors package) and the
batch from JSON; prints one JSON line: tokens/s, step times, peak RSS, first-step loss and gradient norm.
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np


def rss_bytes():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


BASELINE_BEFORE_TORCH = rss_bytes()
import torch  # noqa: E402  (imported after the RSS baseline on purpose)
import torch.nn.functional as F  # noqa: E402


def read_safetensors(path):
    """name -> float32 tensor; F32 only (the bench writes F32)."""
    with open(path, 'rb') as f:
        (n,) = struct.unpack('<Q', f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        if info['dtype'] != 'F32':
            raise SystemExit(f'{path}: tensor {name} is {info["dtype"]}, the twin reads F32 only')
        a, b = info['data_offsets']
        arr = np.frombuffer(data, dtype='<f4', count=(b - a) // 4, offset=a).reshape(info['shape'])
        out[name] = torch.from_numpy(arr.copy())
    return out


class LlamaTwin(torch.nn.Module):
    def __init__(self, cfg, weights):
        super().__init__()
        self.C = cfg['hidden_size']
        self.NH = cfg['num_attention_heads']
        self.NKV = cfg.get('num_key_value_heads', self.NH)
        self.HD = cfg.get('head_dim', self.C // self.NH)
        self.L = cfg['num_hidden_layers']
        self.eps = cfg.get('rms_norm_eps', 1e-6)
        self.theta = cfg.get('rope_theta', 10000.0)
        self.params = torch.nn.ParameterDict({k.replace('.', '/'): torch.nn.Parameter(v) for k, v in weights.items()})
        self.rope_cache = {}

    def w(self, name):
        return self.params[name.replace('.', '/')]

    def rope(self, T):
        if T not in self.rope_cache:
            # angles in float64 then float32, as orpo-ts builds its tables
            inv = 1.0 / (self.theta ** (torch.arange(0, self.HD, 2, dtype=torch.float64) / self.HD))
            f = torch.outer(torch.arange(T, dtype=torch.float64), inv)
            emb = torch.cat((f, f), dim=-1)
            self.rope_cache[T] = (emb.cos().float(), emb.sin().float())
        return self.rope_cache[T]

    def rmsnorm(self, x, weight):
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def attention(self, q, k, v):
        # q (B,NH,T,HD), k/v (B,NKV,T,HD)
        if self.NKV != self.NH:
            g = self.NH // self.NKV
            k = k.repeat_interleave(g, dim=1)
            v = v.repeat_interleave(g, dim=1)
        if hasattr(F, 'scaled_dot_product_attention'):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        T = q.shape[-2]
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.HD))
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        return torch.softmax(scores.masked_fill(mask, float('-inf')), dim=-1) @ v

    def forward(self, ids):
        B, T = ids.shape
        cos, sin = self.rope(T)
        x = F.embedding(ids, self.w('model.embed_tokens.weight'))
        for l in range(self.L):
            p = f'model.layers.{l}.'
            h = self.rmsnorm(x, self.w(p + 'input_layernorm.weight'))
            q = F.linear(h, self.w(p + 'self_attn.q_proj.weight')).view(B, T, self.NH, self.HD).transpose(1, 2)
            k = F.linear(h, self.w(p + 'self_attn.k_proj.weight')).view(B, T, self.NKV, self.HD).transpose(1, 2)
            v = F.linear(h, self.w(p + 'self_attn.v_proj.weight')).view(B, T, self.NKV, self.HD).transpose(1, 2)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            a = self.attention(q, k, v).transpose(1, 2).reshape(B, T, self.NH * self.HD)
            x = x + F.linear(a, self.w(p + 'self_attn.o_proj.weight'))
            h = self.rmsnorm(x, self.w(p + 'post_attention_layernorm.weight'))
            m = F.silu(F.linear(h, self.w(p + 'mlp.gate_proj.weight'))) * F.linear(h, self.w(p + 'mlp.up_proj.weight'))
            x = x + F.linear(m, self.w(p + 'mlp.down_proj.weight'))
        return self.rmsnorm(x, self.w('model.norm.weight'))


def log1mexp(x):
    """log(1 - exp(x)) for x < 0, without cancellation on either side of -ln 2"""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_loss(model, ids, n_pairs, prompt_len, beta):
    """TRL ORPOTrainer on full-length rows (no padding): rows [0, n_pairs) chosen, the rest rejected."""
    R, T = ids.shape
    hidden = model(ids)
    # only positions that predict a token reach the head: logits (R*(T-1), V), one contiguous buffer
    logits = F.linear(hidden[:, :-1].reshape(-1, model.C), model.w('lm_head.weight'))
    logp = -F.cross_entropy(logits, ids[:, 1:].reshape(-1), reduction='none').view(R, T - 1)
    nll = -logp[:n_pairs].mean()  # sft scope 'full': prompt and response tokens of the chosen rows
    avg = logp[:, prompt_len - 1:].mean(-1)  # length-normalised response log-prob of every row
    lc, lr = avg[:n_pairs], avg[n_pairs:]
    log_odds = (lc - lr) - (log1mexp(lc) - log1mexp(lr))
    return nll - beta * F.logsigmoid(log_odds).mean()


def make_optimizer(params, hp):
    kw = dict(lr=hp['lr'], betas=tuple(hp['betas']), eps=hp['eps'], weight_decay=hp['weight_decay'])
    for extra, label in (({'fused': True}, 'AdamW(fused)'), ({'foreach': True}, 'AdamW(foreach)'), ({}, 'AdamW')):
        try:
            opt = torch.optim.AdamW(params, **kw, **extra)
            return opt, label
        except (RuntimeError, TypeError, ValueError):
            continue
    raise SystemExit('no usable torch.optim.AdamW')


def openblas_core():
    """OpenBLAS's own report of the kernel it dispatched to (e.g. 'SkylakeX' or 'Haswell'), read from the loaded library"""
    import ctypes
    with open('/proc/self/maps') as f:
        libs = sorted({line.split()[-1] for line in f if 'openblas' in line.lower() and '.so' in line})
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            return f"{os.path.basename(path)}: core {lib.openblas_get_corename().decode()}, " \
                   f"{lib.openblas_get_config().decode().strip()}, threads {lib.openblas_get_num_threads()}"
        except (OSError, AttributeError):
            continue
    return None


def blas_description():
    """which BLAS and kernels this torch runs: its build config, OpenBLAS's core, threadpoolctl when installed"""
    parts = []
    for line in torch.__config__.show().splitlines():
        s = line.strip().lstrip('- ')
        if s.startswith('Build settings:'):
            settings = dict(kv.strip().split('=', 1) for kv in s[len('Build settings:'):].split(', ') if '=' in kv)
            parts += [f'{k}={settings[k]}' for k in ('BLAS_INFO', 'LAPACK_INFO', 'USE_MKLDNN') if k in settings]
        elif any(k in s for k in ('MKL-DNN', 'Math Kernel Library', 'CPU capability')):
            parts.append(s)
    core = openblas_core()
    if core:
        parts.append(core)
    try:
        from threadpoolctl import threadpool_info
        parts += [f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')} threads={p.get('num_threads')}"
                  for p in threadpool_info()]
    except ImportError:
        pass
    parts.append(f"mkldnn {'available' if torch.backends.mkldnn.is_available() else 'unavailable'}")
    return '; '.join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--weights', required=True)
    ap.add_argument('--batch', required=True)
    ap.add_argument('--threads', type=int, required=True)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--steps', type=int, default=3)
    ap.add_argument('--bf16', action='store_true', help="torch.autocast('cpu', torch.bfloat16) around the forward, as transformers' bf16")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    baseline = rss_bytes()
    with open(args.batch) as f:
        b = json.load(f)
    model = LlamaTwin(b['config'], read_safetensors(args.weights))
    ids = torch.tensor(b['ids'], dtype=torch.long).view(b['rows'], b['T'])
    params = list(model.parameters())
    opt, opt_label = make_optimizer(params, b)

    def step():
        c0 = time.process_time()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=args.bf16):
            loss = orpo_loss(model, ids, b['n_pairs'], b['prompt_len'], b['beta'])
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, b['max_grad_norm'])
        opt.step()
        loss_value = loss.item()
        ms = (time.perf_counter() - t0) * 1000
        # process CPU time (all threads) per thread: the contention-free clock, as in bench/train-step.ts
        cpu_ms = (time.process_time() - c0) * 1000 / args.threads
        return loss_value, float(norm), ms, cpu_ms

    first_loss, first_norm, _, _ = step()
    for _ in range(1, args.warmup):
        step()
    timed = [step() for _ in range(args.steps)]
    times = [t[2] for t in timed]
    cpu_times = [t[3] for t in timed]
    med = float(np.median(times))
    med_cpu = float(np.median(cpu_times))
    tokens = ids.numel()
    print(json.dumps({
        'impl': 'pytorch', 'config': b['name'], 'threads': args.threads, 'torchVersion': torch.__version__, 'bf16': args.bf16,
        'blas': blas_description(),
        'attention': 'F.scaled_dot_product_attention' if hasattr(F, 'scaled_dot_product_attention') else 'matmul+softmax (no SDPA in this torch)',
        'optimizer': opt_label, 'torchThreads': torch.get_num_threads(),
        'env': {k: os.environ.get(k) for k in ('OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE', 'OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'OMP_WAIT_POLICY', 'MALLOC_MMAP_MAX_', 'MALLOC_TRIM_THRESHOLD_')},
        'tokens': tokens, 'stepMs': times, 'medianStepMs': med, 'tokensPerSec': tokens / (med / 1000),
        'stepCpuMs': cpu_times, 'medianStepCpuMs': med_cpu, 'tokensPerSecCpu': tokens / (med_cpu / 1000),
        'firstLoss': first_loss, 'firstGradNorm': first_norm,
        'baselineRssBytes': baseline, 'baselineBeforeTorchBytes': BASELINE_BEFORE_TORCH,
        'peakRssBytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == '__main__':
    sys.exit(main())
