// Latency histogram with log-linear buckets (32 per power of two, ~3% resolution), so
// recording is a few arithmetic operations and percentiles need no sample storage.
const SUB_BITS = 5;
const SUB = 1 << SUB_BITS;
const MAX_EXP = 40; // 2^40 ns ≈ 18 minutes

export class Histogram {
  private readonly counts = new Float64Array((MAX_EXP + 1) * SUB);
  count = 0;
  sum = 0;

  record(ns: number): void {
    const v = ns < 1 ? 1 : ns;
    let e = Math.floor(Math.log2(v));
    if (e > MAX_EXP) e = MAX_EXP;
    const sub = Math.min(SUB - 1, Math.floor((v / 2 ** e - 1) * SUB));
    this.counts[e * SUB + sub]++;
    this.count++;
    this.sum += ns;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sum = 0;
  }

  /** Value (ns) below which fraction p of the samples lie (bucket midpoint). */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const target = p * this.count;
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= target && this.counts[i] > 0) {
        const e = Math.floor(i / SUB), sub = i % SUB;
        return 2 ** e * (1 + (sub + 0.5) / SUB);
      }
    }
    return 2 ** MAX_EXP;
  }

  get mean(): number { return this.count ? this.sum / this.count : 0; }
}
