// The Llama family (Llama 2/3, Mistral, Qwen2, Qwen3): RMSNorm, rotary embeddings (rotate-half), grouped-query
// attention, SwiGLU MLP; Qwen2 q/k/v biases, Qwen3 per-head q/k RMSNorm before RoPE.
//
// Per layer l, with x (BT,C) the residual stream entering the layer:
//   h1 = rmsnorm(x) ; q,k,v = h1 Wq,Wk,Wv [+b] ; (qwen3: q,k = rmsnorm_per_head(q,k)) ; q,k = rope(q,k)
//   a = attention(q,k,v) ; x2 = x + a Wo [+b] ; h2 = rmsnorm(x2) ; m = silu(h2 Wg) * (h2 Wu) ; x' = x2 + m Wd
// and finally hidden = rmsnorm(x_L).
import { DecoderBase } from './base.js';
import { ropeTables, type RopeTables } from './rope.js';
import type { RowPacking } from './types.js';

export class LlamaModel<F = Float32Array, I = Int32Array> extends DecoderBase<F, I> {
  /** the cos/sin tables (positions, HD/2) in the backend, rebuilt when a longer sequence arrives */
  private rope: { positions: number; cos: F; sin: F } | null = null;

  /** cos/sin per token of the current packed forward, (B*T, HD/2), gathered by position */
  private packedRope: { packing: RowPacking; cos: F; sin: F } | null = null;

  private ropeFor(T: number): { cos: F; sin: F } {
    if (!this.rope || this.rope.positions < T) {
      const host: RopeTables = ropeTables(this.config, Math.max(T, 64));
      const k = this.kernels;
      const cos = this.alloc(host.cos.length);
      const sin = this.alloc(host.sin.length);
      k.upload(cos, host.cos);
      k.upload(sin, host.sin);
      if (this.rope) {
        k.free(this.rope.cos);
        k.free(this.rope.sin);
      }
      this.rope = { positions: host.positions, cos, sin };
    }
    return this.rope;
  }

  /**
   * rope over q or k (B,T,H,HD) in place (forward) or into dinp (backward). Packed rows give each token its own
   * position: the tables are gathered per token once per forward and the kernel sees one row of B*T tokens.
   */
  private applyRope(backward: boolean, out: F, inp: F, H: number): void {
    const { B, T, HD } = this.dims();
    const k = this.kernels;
    let cos: F, sin: F, rows = B, width = T, pos0 = this.pos0;
    const packing = this.packing;
    if (packing) {
      if (this.packedRope?.packing !== packing) {
        const half = HD / 2;
        const tables = this.ropeFor(packing.length);
        const positions = this.arena.uploadInts('rope-positions', packing.positions);
        const pc = this.arena.get('rope-cos', B * T * half);
        const ps = this.arena.get('rope-sin', B * T * half);
        k.gatherRows(pc, tables.cos, positions, B * T, half);
        k.gatherRows(ps, tables.sin, positions, B * T, half);
        this.packedRope = { packing, cos: pc, sin: ps };
      }
      ({ cos, sin } = this.packedRope);
      rows = 1;
      width = B * T;
      pos0 = 0;
    } else {
      ({ cos, sin } = this.ropeFor(pos0 + T));
    }
    if (backward) k.ropeBackward(out, inp, cos, sin, rows, width, H, HD, pos0, false);
    else k.ropeForward(out, inp, cos, sin, rows, width, H, HD, pos0);
  }

  private dims() {
    const c = this.config;
    return { B: this.B, T: this.T, BT: this.B * this.T, C: c.hiddenSize, I: c.intermediateSize, NH: c.numHeads,
      NKV: c.numKvHeads, HD: c.headDim, Q: c.numHeads * c.headDim, KV: c.numKvHeads * c.headDim };
  }

  protected embedForward(x0: F): void {
    const { BT, C } = this.dims();
    this.embeddingLookup(x0, this.idsBuf, 'model.embed_tokens.weight', BT, C, false);
  }

  protected embedBackward(dx: F): void {
    const { BT, C } = this.dims();
    const dwte = this.dparam('model.embed_tokens.weight');
    if (dwte) this.kernels.embeddingBackward(dwte, dx, this.idsBuf, BT, C);
  }

  protected finalForward(x: F): F {
    const { BT, C } = this.dims();
    const hidden = this.arena.get('hidden', BT * C);
    this.kernels.rmsnormForward(hidden, this.arena.get('rstdf', BT), x, this.param('model.norm.weight'), BT, C, this.config.normEps);
    return hidden;
  }

  protected finalBackward(dx: F, dhidden: F, x: F): void {
    const { BT, C } = this.dims();
    this.kernels.rmsnormBackward(dx, this.dparam('model.norm.weight'), dhidden, x, this.param('model.norm.weight'),
      this.arena.get('rstdf', BT), BT, C);
  }

  protected layerForward(l: number, x: F, out: F, s: string): void {
    const k = this.kernels;
    const a = this.arena;
    const c = this.config;
    const { B, T, BT, C, I, NH, NKV, HD, Q, KV } = this.dims();
    const pos0 = this.pos0;
    const p = `model.layers.${l}.`;
    const h1 = a.get(s + 'h1', BT * C);
    k.rmsnormForward(h1, a.get(s + 'rstd1', BT), x, this.param(p + 'input_layernorm.weight'), BT, C, c.normEps);
    const q = a.get(s + 'q', BT * Q);
    const kk = a.get(s + 'k', BT * KV);
    const v = a.get(s + 'v', BT * KV);
    if (c.qkNorm) {
      const qRaw = a.get(s + 'qraw', BT * Q);
      const kRaw = a.get(s + 'kraw', BT * KV);
      this.linear(p + 'self_attn.q_proj', qRaw, h1, BT, C, Q);
      this.linear(p + 'self_attn.k_proj', kRaw, h1, BT, C, KV);
      k.rmsnormForward(q, a.get(s + 'qrstd', BT * NH), qRaw, this.param(p + 'self_attn.q_norm.weight'), BT * NH, HD, c.normEps);
      k.rmsnormForward(kk, a.get(s + 'krstd', BT * NKV), kRaw, this.param(p + 'self_attn.k_norm.weight'), BT * NKV, HD, c.normEps);
    } else {
      this.linear(p + 'self_attn.q_proj', q, h1, BT, C, Q);
      this.linear(p + 'self_attn.k_proj', kk, h1, BT, C, KV);
    }
    this.linear(p + 'self_attn.v_proj', v, h1, BT, C, KV);
    this.applyRope(false, q, q, NH);
    this.applyRope(false, kk, kk, NKV);
    const att = a.get(s + 'att', BT * Q);
    if (this.cache) {
      this.cache.write(l, kk, v, T, KV);
      k.attentionDecode(att, q, this.cache.keys(l), this.cache.values(l), T, pos0, NH, NKV, HD, Q, KV);
    } else {
      k.attentionForward(att, a.get(s + 'lse', B * NH * T), q, kk, v, B, T, NH, NKV, HD, Q, KV, this.hiddenKeysBuf);
    }
    const x2 = a.get(s + 'x2', BT * C);
    this.linear(p + 'self_attn.o_proj', x2, att, BT, Q, C);
    k.add(x2, x2, x, BT * C);
    const h2 = a.get(s + 'h2', BT * C);
    k.rmsnormForward(h2, a.get(s + 'rstd2', BT), x2, this.param(p + 'post_attention_layernorm.weight'), BT, C, c.normEps);
    const g = a.get(s + 'gate', BT * I);
    const u = a.get(s + 'up', BT * I);
    this.linear(p + 'mlp.gate_proj', g, h2, BT, C, I);
    this.linear(p + 'mlp.up_proj', u, h2, BT, C, I);
    const m = a.get(s + 'm', BT * I);
    k.swigluForward(m, g, u, BT * I);
    this.linear(p + 'mlp.down_proj', out, m, BT, I, C);
    k.add(out, out, x2, BT * C);
  }

  protected layerBackward(l: number, dx: F, x: F, s: string): void {
    const k = this.kernels;
    const a = this.arena;
    const c = this.config;
    const { B, T, BT, C, I, NH, NKV, HD, Q, KV } = this.dims();
    const p = `model.layers.${l}.`;
    const x2 = a.get(s + 'x2', BT * C);
    // MLP: x' = x2 + down(swiglu(gate(h2), up(h2))). Each activation gradient's first kernel writes it (false:
    // not accumulated), so none is zeroed first; the residual stream's dx accumulates.
    const dm = a.get('dm', BT * I);
    this.linearBackward(p + 'mlp.down_proj', dm, dx, a.get(s + 'm', BT * I), BT, I, C, false);
    const dg = a.get('dg', BT * I);
    const du = a.get('du', BT * I);
    k.swigluBackward(dg, du, dm, a.get(s + 'gate', BT * I), a.get(s + 'up', BT * I), BT * I, false);
    const h2 = a.get(s + 'h2', BT * C);
    const dh = a.get('dh', BT * C);
    this.linearBackward(p + 'mlp.gate_proj', dh, dg, h2, BT, C, I, false);
    this.linearBackward(p + 'mlp.up_proj', dh, du, h2, BT, C, I, true);
    k.rmsnormBackward(dx, this.dparam(p + 'post_attention_layernorm.weight'), dh, x2,
      this.param(p + 'post_attention_layernorm.weight'), a.get(s + 'rstd2', BT), BT, C);
    // attention: x2 = x + o_proj(att)
    const datt = a.get('datt', BT * Q);
    const att = a.get(s + 'att', BT * Q);
    this.linearBackward(p + 'self_attn.o_proj', datt, dx, att, BT, Q, C, false);
    const dq = a.zeros('dq', BT * Q);
    const dk = a.zeros('dk', BT * KV);
    const dv = a.zeros('dv', BT * KV);
    k.attentionBackward(dq, dk, dv, datt, a.get(s + 'q', BT * Q), a.get(s + 'k', BT * KV), a.get(s + 'v', BT * KV), att,
      a.get(s + 'lse', B * NH * T), B, T, NH, NKV, HD, Q, KV, this.hiddenKeysBuf);
    // rope is a rotation: its backward needs no saved input (and writes its gradient)
    const dqPre = a.get('dqpre', BT * Q);
    const dkPre = a.get('dkpre', BT * KV);
    this.applyRope(true, dqPre, dq, NH);
    this.applyRope(true, dkPre, dk, NKV);
    let dqProj = dqPre;
    let dkProj = dkPre;
    if (c.qkNorm) {
      dqProj = a.zeros('dq', BT * Q);
      dkProj = a.zeros('dk', BT * KV);
      k.rmsnormBackward(dqProj, this.dparam(p + 'self_attn.q_norm.weight'), dqPre, a.get(s + 'qraw', BT * Q),
        this.param(p + 'self_attn.q_norm.weight'), a.get(s + 'qrstd', BT * NH), BT * NH, HD);
      k.rmsnormBackward(dkProj, this.dparam(p + 'self_attn.k_norm.weight'), dkPre, a.get(s + 'kraw', BT * KV),
        this.param(p + 'self_attn.k_norm.weight'), a.get(s + 'krstd', BT * NKV), BT * NKV, HD);
    }
    const h1 = a.get(s + 'h1', BT * C);
    const dh1 = a.get('dh', BT * C);
    this.linearBackward(p + 'self_attn.q_proj', dh1, dqProj, h1, BT, C, Q, false);
    this.linearBackward(p + 'self_attn.k_proj', dh1, dkProj, h1, BT, C, KV, true);
    this.linearBackward(p + 'self_attn.v_proj', dh1, dv, h1, BT, C, KV, true);
    k.rmsnormBackward(dx, this.dparam(p + 'input_layernorm.weight'), dh1, x,
      this.param(p + 'input_layernorm.weight'), a.get(s + 'rstd1', BT), BT, C);
  }
}
