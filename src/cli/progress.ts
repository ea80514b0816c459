// What a run shows while it works: on a terminal one self-rewriting progress line (step/total, loss, margin,
// accuracy, tokens/s, ETA); otherwise (CI logs, pipes) one plain line per logging step. Both go to stderr so
// stdout stays clean for results (`--json`).

import type { LogRecord, Progress } from '../train/trainer.js';

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

const f = (x: number | undefined, digits = 4): string => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));

export class ProgressReporter {
  private lastDraw = 0;
  private drawn = false;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr, readonly tty = out.isTTY === true) {}

  progress(p: Progress): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.lastDraw < 100 && p.step < p.totalSteps) return; // at most 10 redraws a second
    this.lastDraw = now;
    const width = 20;
    const done = Math.round((p.step / p.totalSteps) * width);
    const bar = `${'█'.repeat(done)}${'░'.repeat(width - done)}`;
    // most useful first: a narrow terminal cuts the end of the line
    const line = `${bar} ${p.step}/${p.totalSteps} ETA ${formatDuration(p.eta)} loss ${f(p.loss)} margin ${f(p.margin)} ` +
      `acc ${f(p.accuracy, 2)} ${Math.round(p.tokensPerSecond)} tok/s ep ${p.epoch.toFixed(2)}`;
    const columns = this.out.columns ?? 120;
    this.out.write(`\r${line.slice(0, columns - 1)}\x1b[K`);
    this.drawn = true;
  }

  private evalStarted = 0;
  private evalLastLine = 0;

  /**
   * Evaluation under way (pairs done of total): on a terminal the bar with an ETA; elsewhere a line when it starts
   * and then at most one every 30 s, so a long evaluation is never silent and a CI log never floods.
   */
  evaluating(done: number, total: number): void {
    const now = Date.now();
    if (this.evalStarted === 0 || done <= 0) [this.evalStarted, this.evalLastLine] = [now, now];
    const elapsed = (now - this.evalStarted) / 1000;
    const eta = done > 0 ? (elapsed / done) * (total - done) : NaN;
    if (done >= total) this.evalStarted = 0;
    if (this.tty) {
      if (now - this.lastDraw < 100 && done < total) return;
      this.lastDraw = now;
      const width = 20;
      const filled = Math.round((done / total) * width);
      const line = `eval ${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${done}/${total} pairs ETA ${formatDuration(eta)}`;
      this.out.write(`\r${line.slice(0, (this.out.columns ?? 120) - 1)}\x1b[K`);
      this.drawn = true;
    } else if (now - this.evalLastLine >= 30_000 && done < total) {
      this.evalLastLine = now;
      this.message(`evaluating: ${done}/${total} pairs, ETA ${formatDuration(eta)}`);
    }
  }

  /** a metrics record: printed as a line when not on a terminal, and evaluation results always */
  log(r: LogRecord): void {
    const isEval = Object.keys(r).some((k) => k.startsWith('eval_'));
    if (this.tty && !isEval) return;
    const p = isEval ? 'eval_' : '';
    const line = `${isEval ? 'eval ' : ''}step ${r['step']} epoch ${f(r['epoch'], 2)} loss ${f(r[`${p}loss`])} nll ${f(r[`${p}nll_loss`])} ` +
      `margin ${f(r[`${p}rewards/margins`])} acc ${f(r[`${p}rewards/accuracies`], 3)}` +
      (isEval ? '' : ` lr ${r['learning_rate']?.toExponential(2)} grad_norm ${f(r['grad_norm'], 3)} ${r['tokens_per_second']} tok/s`);
    this.message(line);
  }

  /** a line that must not be overwritten by the bar */
  message(line: string): void {
    if (this.drawn) this.out.write('\r\x1b[K');
    this.out.write(`${line}\n`);
    this.drawn = false;
  }

  finish(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}
