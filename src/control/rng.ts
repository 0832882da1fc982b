// A small seeded pseudo-random generator (mulberry32): fault rules and power-cut policies
// must replay the same choices from the same seed, which Math.random cannot.
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0; }
  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform integer in [0, n]. */
  upTo(n: number): number { return Math.min(n, Math.floor(this.next() * (n + 1))); }
}
