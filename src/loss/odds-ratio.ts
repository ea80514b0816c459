// The odds-ratio term of ORPO on length-normalised log-probabilities, with its gradient (float64 throughout).
//   log_odds = (lc - lr) - (log1mexp(lc) - log1mexp(lr)),  term = mean(logsigmoid(log_odds))
// lc, lr are average log-probs of the chosen and rejected responses (always < 0).

/**
 * log(1 - exp(x)) for x < 0. Near 0, 1 - exp(x) cancels catastrophically, so use log(-expm1(x)) there; far
 * below, exp(x) is tiny and log1p(-exp(x)) keeps its digits. The switch at -ln 2 is where both are equally good.
 */
export function log1mexp(x: number): number {
  return x < -Math.LN2 ? Math.log1p(-Math.exp(x)) : Math.log(-Math.expm1(x));
}

/** log(sigmoid(z)) = -softplus(-z), written so neither branch overflows */
export function logSigmoid(z: number): number {
  return Math.min(z, 0) - Math.log1p(Math.exp(-Math.abs(z)));
}

/** sigmoid(z) without overflow */
export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

export interface OddsRatioPair {
  logOdds: number;
  logSigmoid: number;
  /** d logsigmoid(log_odds) / d lc and / d lr */
  dLc: number;
  dLr: number;
}

export function oddsRatio(lc: number, lr: number): OddsRatioPair {
  const logOdds = (lc - lr) - (log1mexp(lc) - log1mexp(lr));
  const s = sigmoid(-logOdds); // d logsigmoid(z) / dz
  // d log_odds / d lc = 1 / (1 - e^lc) ; d log_odds / d lr = -1 / (1 - e^lr), with 1 - e^x = -expm1(x)
  return { logOdds, logSigmoid: logSigmoid(logOdds), dLc: s / -Math.expm1(lc), dLr: -s / -Math.expm1(lr) };
}
