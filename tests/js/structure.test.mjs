import test from 'node:test';
import assert from 'node:assert/strict';
import {layerRows, layerOfTag, tagInRun} from '../../frontend/model/structure.js';

const structure = {
  model: {name: 'm', class: 'Functional'},
  layers: [
    {path: 'input', class: 'InputLayer', params: 0, inbound: [], output_shape: [null, 4], weights: []},
    {path: 'a', class: 'Dense', params: 20, inbound: ['input'], output_shape: [null, 4],
      weights: [{name: 'kernel', tag: 'a/kernel', shape: [4, 4]}, {name: 'bias', tag: 'a/bias', shape: [4]}]},
    {path: 'b', class: 'Dense', params: 20, inbound: ['input'], output_shape: [null, 4], weights: []},
    {path: 'add', class: 'Add', params: 0, inbound: ['a', 'b'], output_shape: [null, 4], weights: []},
    {path: 'enc/e1', class: 'Dense', params: 5, inbound: ['add'], output_shape: [null, 1],
      weights: [{name: 'kernel', tag: 'enc/e1/kernel', shape: [4, 1]}]},
  ],
};

test('layer rows keep model order and mark branches and merges', () => {
  const rows = layerRows(structure, [{tag: 'a/kernel', shape: [4, 4]}, {tag: 'a/bias', shape: [4]},
    {tag: 'enc/e1/kernel', shape: [4, 1]}]);
  assert.deepEqual(rows.map((r) => r.path), ['input', 'a', 'b', 'add', 'enc', 'enc/e1']);
  const byPath = Object.fromEntries(rows.map((r) => [r.path, r]));
  assert.equal(byPath.input.branch, true);
  assert.deepEqual(byPath.input.consumers, ['a', 'b']);
  assert.equal(byPath.add.merge, true);
  assert.equal(byPath.a.merge, false);
  assert.equal(byPath['enc/e1'].depth, 1);
  assert.equal(byPath.enc.synthetic, true, 'a missing parent gets a plain row');
  assert.deepEqual(byPath.a.weights.map((w) => w.tag), ['a/kernel', 'a/bias']);
});

test('tags missing from the structure still appear, grouped by layer', () => {
  const rows = layerRows(null, [{tag: 'x/kernel', shape: [2, 2]}, {tag: 'x/bias', shape: [2]}, {tag: 'lstm/cell/kernel', shape: [3, 8]}]);
  assert.deepEqual(rows.map((r) => r.path), ['x', 'lstm', 'lstm/cell']);
  assert.deepEqual(rows[0].weights.map((w) => w.name), ['kernel', 'bias']);
  assert.equal(layerOfTag('lstm/cell/kernel'), 'lstm/cell');
});

test('a Keras tag finds its PyTorch counterpart in a torch run, and back', () => {
  const torchRun = new Set(['conv1/weight', 'conv1/bias', 'bn/weight', 'bn/running_mean', 'bn/running_var']);
  const kerasRun = new Map([['conv1/kernel', {}], ['emb/embeddings', {}], ['bn/gamma', {}], ['bn/beta', {}]]);
  assert.equal(tagInRun('conv1/kernel', torchRun), 'conv1/weight');
  assert.equal(tagInRun('conv1/bias', torchRun), 'conv1/bias');
  assert.equal(tagInRun('bn/moving_mean', torchRun), 'bn/running_mean');
  assert.equal(tagInRun('bn/moving_variance', torchRun), 'bn/running_var');
  assert.equal(tagInRun('conv1/weight', kerasRun), 'conv1/kernel');
  assert.equal(tagInRun('emb/weight', kerasRun), 'emb/embeddings');
  assert.equal(tagInRun('bn/weight', kerasRun), 'bn/gamma');
  assert.equal(tagInRun('bn/bias', kerasRun), 'bn/beta');
  // Only within the same layer, and only a counterpart that exists.
  assert.equal(tagInRun('conv2/kernel', torchRun), null);
  assert.equal(tagInRun('kernel', new Set(['weight'])), 'weight');
  assert.equal(tagInRun('dense/recurrent_kernel', torchRun), null);
  assert.equal(tagInRun(null, torchRun), null);
});
