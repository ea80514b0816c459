// GPT-2: learned positions, pre-LayerNorm blocks with biases, fused qkv projection, GELU (tanh) MLP.
// Conv1D weights are transposed to (out, in) at load, so every projection is the same linear kernel.
//
// Per layer, with x (BT,C) the residual stream:
//   h1 = ln_1(x) ; qkv = h1 Wattn + b (BT,3C) ; a = attention(q,k,v views of qkv, row stride 3C)
//   x2 = x + a Wproj + b ; h2 = ln_2(x2) ; f = gelu(h2 Wfc + b) ; x' = x2 + f Wmproj + b
// and finally hidden = ln_f(x_L).
import { DecoderBase } from './base.js';

export class Gpt2Model extends DecoderBase {
  private positions = new Int32Array(0);

  private positionIds(B: number, T: number): Int32Array {
    if (this.positions.length !== B * T) {
      this.positions = new Int32Array(B * T);
      for (let i = 0; i < B * T; i++) this.positions[i] = i % T;
    }
    return this.positions;
  }

  protected forwardImpl(ids: Int32Array, B: number, T: number): Float32Array {
    const k = this.kernels;
    const a = this.arena;
    const c = this.config;
    const BT = B * T;
    const C = c.hiddenSize;
    const I = c.intermediateSize;
    const NH = c.numHeads;
    const HD = c.headDim;
    let x = a.get('x0', BT * C);
    k.embeddingForward(x, ids, this.param('transformer.wte.weight'), BT, C, false);
    k.embeddingForward(x, this.positionIds(B, T), this.param('transformer.wpe.weight'), BT, C, true);
    for (let l = 0; l < c.numLayers; l++) {
      const p = `transformer.h.${l}.`;
      const s = `L${l}.`;
      const h1 = a.get(s + 'h1', BT * C);
      k.layernormForward(h1, a.get(s + 'mean1', BT), a.get(s + 'rstd1', BT), x, this.param(p + 'ln_1.weight'),
        this.param(p + 'ln_1.bias'), BT, C, c.normEps);
      const qkv = a.get(s + 'qkv', BT * 3 * C);
      this.linear(p + 'attn.c_attn', qkv, h1, BT, C, 3 * C);
      const att = a.get(s + 'att', BT * C);
      k.attentionForward(att, a.get(s + 'lse', B * NH * T), qkv, qkv.subarray(C), qkv.subarray(2 * C),
        B, T, NH, NH, HD, 3 * C, 3 * C);
      const x2 = a.get(s + 'x2', BT * C);
      this.linear(p + 'attn.c_proj', x2, att, BT, C, C);
      k.add(x2, x2, x, BT * C);
      const h2 = a.get(s + 'h2', BT * C);
      k.layernormForward(h2, a.get(s + 'mean2', BT), a.get(s + 'rstd2', BT), x2, this.param(p + 'ln_2.weight'),
        this.param(p + 'ln_2.bias'), BT, C, c.normEps);
      const fc = a.get(s + 'fc', BT * I);
      this.linear(p + 'mlp.c_fc', fc, h2, BT, C, I);
      const ge = a.get(s + 'gelu', BT * I);
      k.geluForward(ge, fc, BT * I);
      const x3 = a.get(`x${l + 1}`, BT * C);
      this.linear(p + 'mlp.c_proj', x3, ge, BT, I, C);
      k.add(x3, x3, x2, BT * C);
      x = x3;
    }
    const hidden = a.get('hidden', BT * C);
    k.layernormForward(hidden, a.get('meanf', BT), a.get('rstdf', BT), x, this.param('transformer.ln_f.weight'),
      this.param('transformer.ln_f.bias'), BT, C, c.normEps);
    return hidden;
  }

  protected backwardImpl(dhidden: Float32Array): void {
    const k = this.kernels;
    const a = this.arena;
    const c = this.config;
    const { B, T } = this;
    const BT = B * T;
    const C = c.hiddenSize;
    const I = c.intermediateSize;
    const NH = c.numHeads;
    const HD = c.headDim;
    const L = c.numLayers;
    const dx = a.zeros('dx', BT * C);
    k.layernormBackward(dx, this.dparam('transformer.ln_f.weight'), this.dparam('transformer.ln_f.bias'), dhidden,
      a.get(`x${L}`, BT * C), this.param('transformer.ln_f.weight'), a.get('meanf', BT), a.get('rstdf', BT), BT, C);
    for (let l = L - 1; l >= 0; l--) {
      const p = `transformer.h.${l}.`;
      const s = `L${l}.`;
      const x = a.get(`x${l}`, BT * C);
      const x2 = a.get(s + 'x2', BT * C);
      const dge = a.zeros('dgelu', BT * I);
      this.linearBackward(p + 'mlp.c_proj', dge, dx, a.get(s + 'gelu', BT * I), BT, I, C);
      const dfc = a.zeros('dfc', BT * I);
      k.geluBackward(dfc, dge, a.get(s + 'fc', BT * I), BT * I);
      const dh = a.zeros('dh', BT * C);
      this.linearBackward(p + 'mlp.c_fc', dh, dfc, a.get(s + 'h2', BT * C), BT, C, I);
      k.layernormBackward(dx, this.dparam(p + 'ln_2.weight'), this.dparam(p + 'ln_2.bias'), dh, x2,
        this.param(p + 'ln_2.weight'), a.get(s + 'mean2', BT), a.get(s + 'rstd2', BT), BT, C);
      const att = a.get(s + 'att', BT * C);
      const datt = a.zeros('datt', BT * C);
      this.linearBackward(p + 'attn.c_proj', datt, dx, att, BT, C, C);
      const qkv = a.get(s + 'qkv', BT * 3 * C);
      const dqkv = a.zeros('dqkv', BT * 3 * C);
      k.attentionBackward(dqkv, dqkv.subarray(C), dqkv.subarray(2 * C), datt, qkv, qkv.subarray(C), qkv.subarray(2 * C),
        att, a.get(s + 'lse', B * NH * T), B, T, NH, NH, HD, 3 * C, 3 * C);
      const dh1 = a.zeros('dh', BT * C);
      this.linearBackward(p + 'attn.c_attn', dh1, dqkv, a.get(s + 'h1', BT * C), BT, C, 3 * C);
      k.layernormBackward(dx, this.dparam(p + 'ln_1.weight'), this.dparam(p + 'ln_1.bias'), dh1, x,
        this.param(p + 'ln_1.weight'), a.get(s + 'mean1', BT), a.get(s + 'rstd1', BT), BT, C);
    }
    const dwte = this.dparam('transformer.wte.weight');
    if (dwte) k.embeddingBackward(dwte, dx, this.ids, BT, C);
    const dwpe = this.dparam('transformer.wpe.weight');
    if (dwpe) k.embeddingBackward(dwpe, dx, this.positionIds(B, T), BT, C);
  }
}
