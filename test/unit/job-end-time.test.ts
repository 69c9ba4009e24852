import type { V1Job, V1JobCondition } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { jobEndTime } from '../../src/metrics.ts';

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 12, 0, s));
const condition = (type: string, s: number, status = 'True'): V1JobCondition => ({ type, status, lastTransitionTime: at(s) });
const job = (conditions: V1JobCondition[], completionTime?: Date): V1Job => ({ status: { conditions, ...(completionTime && { completionTime }) } });

describe('jobEndTime (the start of the Job end → row latency)', () => {
  it('is undefined while the Job runs', () => {
    expect(jobEndTime(job([]))).toBeUndefined();
    expect(jobEndTime(job([condition('Complete', 1, 'False')]))).toBeUndefined();
  });

  it('is the interim condition when Kubernetes has not yet set Complete or Failed (the row may already be final)', () => {
    expect(jobEndTime(job([condition('SuccessCriteriaMet', 3)]))).toEqual(at(3));
    expect(jobEndTime(job([condition('FailureTarget', 4)]))).toEqual(at(4));
  });

  it('keeps the first final condition once Complete and completionTime follow', () => {
    expect(jobEndTime(job([condition('SuccessCriteriaMet', 3), condition('Complete', 5)], at(5)))).toEqual(at(3));
    expect(jobEndTime(job([condition('FailureTarget', 4), condition('Failed', 6)]))).toEqual(at(4));
  });

  it('reads Complete, Failed or completionTime alone on clusters without the interim conditions', () => {
    expect(jobEndTime(job([condition('Complete', 7)], at(7)))).toEqual(at(7));
    expect(jobEndTime(job([condition('Failed', 8)]))).toEqual(at(8));
    expect(jobEndTime(job([], at(9)))).toEqual(at(9));
  });
});
