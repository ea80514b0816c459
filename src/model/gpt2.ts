// GPT-2: learned positions, pre-LayerNorm blocks with biases, fused qkv projection, GELU (tanh) MLP.
// Conv1D weights are transposed to (out, in) at load, so every projection is the same linear kernel.
//
// Per layer, with x (BT,C) the residual stream:
//   h1 = ln_1(x) ; qkv = h1 Wattn + b (BT,3C) ; a = attention(q,k,v views of qkv, row stride 3C)
//   x2 = x + a Wproj + b ; h2 = ln_2(x2) ; f = gelu(h2 Wfc + b) ; x' = x2 + f Wmproj + b
// and finally hidden = ln_f(x_L).
import { DecoderBase } from './base.js';

export class Gpt2Model<F = Float32Array, I = Int32Array> extends DecoderBase<F, I> {
  /** position ids of the current forward in the backend, uploaded by embedForward */
  private positionsBuf!: I;

  private positionIds(): Int32Array {
    if (this.packing) return this.packing.positions;
    const { B, T, pos0 } = this;
    const positions = new Int32Array(B * T);
    for (let i = 0; i < B * T; i++) positions[i] = pos0 + (i % T);
    return positions;
  }

  /** the view of a (BT, 3C) qkv buffer from element `from` on: k and v for the attention kernels, rows 3C apart */
  private tail(qkv: F, from: number): F {
    return this.kernels.view(qkv, from, this.kernels.lengthOf(qkv) - from);
  }

  private dims() {
    const c = this.config;
    return { B: this.B, T: this.T, BT: this.B * this.T, C: c.hiddenSize, I: c.intermediateSize, NH: c.numHeads, HD: c.headDim };
  }

  protected embedForward(x0: F): void {
    const { BT, C } = this.dims();
    this.positionsBuf = this.arena.uploadInts('positions', this.positionIds());
    this.embeddingLookup(x0, this.idsBuf, 'transformer.wte.weight', BT, C, false);
    this.embeddingLookup(x0, this.positionsBuf, 'transformer.wpe.weight', BT, C, true);
  }

  protected embedBackward(dx: F): void {
    const { BT, C } = this.dims();
    const dwte = this.dparam('transformer.wte.weight');
    if (dwte) this.kernels.embeddingBackward(dwte, dx, this.idsBuf, BT, C);
    const dwpe = this.dparam('transformer.wpe.weight');
    if (dwpe) this.kernels.embeddingBackward(dwpe, dx, this.positionsBuf, BT, C);
  }

  protected finalForward(x: F): F {
    const { BT, C } = this.dims();
    const hidden = this.arena.get('hidden', BT * C);
    this.kernels.layernormForward(hidden, this.arena.get('meanf', BT), this.arena.get('rstdf', BT), x,
      this.param('transformer.ln_f.weight'), this.param('transformer.ln_f.bias'), BT, C, this.config.normEps);
    return hidden;
  }

  protected finalBackward(dx: F, dhidden: F, x: F): void {
    const { BT, C } = this.dims();
    this.kernels.layernormBackward(dx, this.dparam('transformer.ln_f.weight'), this.dparam('transformer.ln_f.bias'),
      dhidden, x, this.param('transformer.ln_f.weight'), this.arena.get('meanf', BT), this.arena.get('rstdf', BT), BT, C);
  }

  protected layerForward(l: number, x: F, out: F, s: string): void {
    const k = this.kernels;
    const a = this.arena;
    const { B, T, BT, C, I, NH, HD } = this.dims();
    const p = `transformer.h.${l}.`;
    const eps = this.config.normEps;
    const h1 = a.get(s + 'h1', BT * C);
    k.layernormForward(h1, a.get(s + 'mean1', BT), a.get(s + 'rstd1', BT), x, this.param(p + 'ln_1.weight'),
      this.param(p + 'ln_1.bias'), BT, C, eps);
    const qkv = a.get(s + 'qkv', BT * 3 * C);
    this.linear(p + 'attn.c_attn', qkv, h1, BT, C, 3 * C);
    const att = a.get(s + 'att', BT * C);
    if (this.cache) {
      this.cache.write(l, this.tail(qkv, C), this.tail(qkv, 2 * C), T, 3 * C);
      k.attentionDecode(att, qkv, this.cache.keys(l), this.cache.values(l), T, this.pos0, NH, NH, HD, 3 * C, C);
    } else {
      k.attentionForward(att, a.get(s + 'lse', B * NH * T), qkv, this.tail(qkv, C), this.tail(qkv, 2 * C),
        B, T, NH, NH, HD, 3 * C, 3 * C, this.hiddenKeysBuf);
    }
    const x2 = a.get(s + 'x2', BT * C);
    this.linear(p + 'attn.c_proj', x2, att, BT, C, C);
    k.add(x2, x2, x, BT * C);
    const h2 = a.get(s + 'h2', BT * C);
    k.layernormForward(h2, a.get(s + 'mean2', BT), a.get(s + 'rstd2', BT), x2, this.param(p + 'ln_2.weight'),
      this.param(p + 'ln_2.bias'), BT, C, eps);
    const fc = a.get(s + 'fc', BT * I);
    this.linear(p + 'mlp.c_fc', fc, h2, BT, C, I);
    const ge = a.get(s + 'gelu', BT * I);
    k.geluForward(ge, fc, BT * I);
    this.linear(p + 'mlp.c_proj', out, ge, BT, I, C);
    k.add(out, out, x2, BT * C);
  }

  protected layerBackward(l: number, dx: F, x: F, s: string): void {
    const k = this.kernels;
    const a = this.arena;
    const { B, T, BT, C, I, NH, HD } = this.dims();
    const p = `transformer.h.${l}.`;
    const x2 = a.get(s + 'x2', BT * C);
    // each activation gradient's first kernel writes it (false: not accumulated), so none is zeroed first
    const dge = a.get('dgelu', BT * I);
    this.linearBackward(p + 'mlp.c_proj', dge, dx, a.get(s + 'gelu', BT * I), BT, I, C, false);
    const dfc = a.get('dfc', BT * I);
    k.geluBackward(dfc, dge, a.get(s + 'fc', BT * I), BT * I, false);
    const dh = a.get('dh', BT * C);
    this.linearBackward(p + 'mlp.c_fc', dh, dfc, a.get(s + 'h2', BT * C), BT, C, I, false);
    k.layernormBackward(dx, this.dparam(p + 'ln_2.weight'), this.dparam(p + 'ln_2.bias'), dh, x2,
      this.param(p + 'ln_2.weight'), a.get(s + 'mean2', BT), a.get(s + 'rstd2', BT), BT, C);
    const att = a.get(s + 'att', BT * C);
    const datt = a.get('datt', BT * C);
    this.linearBackward(p + 'attn.c_proj', datt, dx, att, BT, C, C, false);
    const qkv = a.get(s + 'qkv', BT * 3 * C);
    const dqkv = a.zeros('dqkv', BT * 3 * C);
    k.attentionBackward(dqkv, this.tail(dqkv, C), this.tail(dqkv, 2 * C), datt, qkv, this.tail(qkv, C), this.tail(qkv, 2 * C),
      att, a.get(s + 'lse', B * NH * T), B, T, NH, NH, HD, 3 * C, 3 * C, this.hiddenKeysBuf);
    const dh1 = a.get('dh', BT * C);
    this.linearBackward(p + 'attn.c_attn', dh1, dqkv, a.get(s + 'h1', BT * C), BT, C, 3 * C, false);
    k.layernormBackward(dx, this.dparam(p + 'ln_1.weight'), this.dparam(p + 'ln_1.bias'), dh1, x,
      this.param(p + 'ln_1.weight'), a.get(s + 'mean1', BT), a.get(s + 'rstd1', BT), BT, C);
  }
}
