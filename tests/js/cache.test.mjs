import test from 'node:test';
import assert from 'node:assert/strict';
import {FrameCache} from '../../frontend/data/api.js';

function fakeFetcher(log, fail = new Set()) {
  return async (run, tag, step) => {
    log.push(step);
    if (fail.has(step)) throw new Error(`no step ${step}`);
    return {rows: 1, cols: 4, step, data: new Float32Array(4).fill(step)};
  };
}

test('a frame is requested once however often it is asked for', async () => {
  const log = [];
  const cache = new FrameCache(1 << 20, fakeFetcher(log));
  assert.equal(cache.peek('r', 't', 1), null);
  const [a, b] = await Promise.all([cache.get('r', 't', 1), cache.get('r', 't', 1)]);
  assert.equal(a, b);
  assert.deepEqual(log, [1]);
  assert.equal(cache.peek('r', 't', 1), a);
  cache.prefetch('r', 't', [1, 2, 3]);
  await cache.get('r', 't', 3);
  assert.deepEqual(log, [1, 2, 3]);
});

test('least recently used frames go first when over the byte budget', async () => {
  const log = [];
  const cache = new FrameCache(3 * 16, fakeFetcher(log)); // room for 3 frames of 16 bytes
  for (const s of [1, 2, 3]) await cache.get('r', 't', s);
  await cache.get('r', 't', 1); // 1 is now the most recent
  await cache.get('r', 't', 4); // evicts 2
  assert.equal(cache.peek('r', 't', 2), null);
  assert.notEqual(cache.peek('r', 't', 1), null);
  assert.ok(cache.bytes <= 3 * 16);
});

test('failed requests are not kept: asking again retries', async () => {
  const log = [];
  const fail = new Set([5]);
  const cache = new FrameCache(1 << 20, fakeFetcher(log, fail));
  await assert.rejects(cache.get('r', 't', 5), /no step 5/);
  fail.clear();
  const frame = await cache.get('r', 't', 5);
  assert.equal(frame.step, 5);
  assert.deepEqual(log, [5, 5]);
});

test('runs and tags with the same step do not collide', async () => {
  const cache = new FrameCache(1 << 20, async (run, tag, step) => ({rows: 1, cols: 1, step, data: Float32Array.of(run.length + tag.length)}));
  const a = await cache.get('a', 'x/kernel', 0);
  const b = await cache.get('ab', 'x/kernel', 0);
  assert.notEqual(a.data[0], b.data[0]);
});
