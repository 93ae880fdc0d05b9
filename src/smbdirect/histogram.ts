// A small log-linear latency histogram (microseconds): constant memory, cheap record(),
// percentiles good to ~6 %. Enough for credit-wait and RDMA-op latency in conn.stats().
const SUB = 16; // linear sub-buckets per power of two

export interface HistogramSummary {
  count: number;
  minUs: number;
  maxUs: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
}

export class Histogram {
  private readonly counts = new Float64Array(64 * SUB);
  private n = 0;
  private sum = 0;
  private min = Infinity;
  private max = 0;

  record(us: number): void {
    const v = Math.max(us, 0);
    this.counts[bucketOf(v)]!++;
    this.n++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  percentile(p: number): number {
    if (this.n === 0) return 0;
    const want = Math.max(1, Math.ceil((p / 100) * this.n));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= want) return Math.min(Math.max(upperOf(i), this.min), this.max);
    }
    return this.max;
  }

  summary(): HistogramSummary {
    return {
      count: this.n, minUs: this.n ? this.min : 0, maxUs: this.max, meanUs: this.n ? this.sum / this.n : 0,
      p50Us: this.percentile(50), p99Us: this.percentile(99), p999Us: this.percentile(99.9),
    };
  }
}

function bucketOf(v: number): number {
  if (v < SUB) return Math.floor(v);
  const e = Math.floor(Math.log2(v));            // v in [2^e, 2^(e+1))
  const sub = Math.floor((v / 2 ** e - 1) * SUB); // 0..SUB-1
  return Math.min((e - 3) * SUB + sub, 64 * SUB - 1);
}

function upperOf(i: number): number {
  if (i < SUB) return i + 1;
  const e = Math.floor(i / SUB) + 3;
  const sub = i % SUB;
  return 2 ** e * (1 + (sub + 1) / SUB);
}
