import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pairedRatio, runOrder, type CaseResult, type Sample } from '../../bench/report.js';

const sample = (round: number, rps: number, cpuUsPerReq: number): Sample => ({ round, rps, cpuUsPerReq, p50Ms: 1, p99Ms: 2, peakRssMiB: 1, requests: 1, errors: 0 });
const result = (id: string, samples: Sample[]): CaseResult => ({ id, short: id, group: 0, title: id, gatehouse: false, status: 'ok', samples });

describe('bench report', () => {
  it('runs each Gatehouse case right after its baseline; nginx and the ceiling keep their places', () => {
    const ids = ['1', '2', '2-rs256', '2-cycle', '3', '4', '4-info', '5-rs256', '6', '8-64k-bare', '8-64k-nginx', '8-64k-gw', '9-gw-1w', '9-gw-2w', '9-nginx-1w', '9-nginx-2w', '4@base'];
    assert.deepEqual(
      runOrder(ids.map((id) => ({ id, gatehouse: /^[4-8]|^9-gw/.test(id) && !/nginx|-bare$/.test(id) }))).map((c) => c.id),
      ['1', '2', '4', '4-info', '4@base', '2-rs256', '5-rs256', '2-cycle', '6', '3', '8-64k-bare', '8-64k-gw', '8-64k-nginx', '9-gw-1w', '9-gw-2w', '9-nginx-1w', '9-nginx-2w'],
    );
  });

  it('takes the median of per-round ratios, pairing samples by round', () => {
    // Round 2 is slow for both (machine drift): per-round ratios 0.9, 0.9, 0.5 → median 0.9,
    // where the ratio of medians would say 90/100 = 0.9 only by luck of the numbers.
    const base = result('2', [sample(1, 100, 40), sample(2, 50, 80), sample(3, 100, 40)]);
    const gw = result('4', [sample(1, 90, 44), sample(2, 45, 88), sample(3, 50, 80)]);
    assert.equal(pairedRatio(gw, base, 'rps'), 0.9);
    assert.equal(pairedRatio(gw, base, 'cpuUsPerReq'), 40 / 44);
    // A round the baseline missed is left out, not paired with another round.
    const partial = result('2', [sample(2, 50, 80)]);
    assert.equal(pairedRatio(gw, partial, 'rps'), 0.9);
    assert.equal(pairedRatio(gw, result('2', []), 'rps'), undefined);
  });
});
