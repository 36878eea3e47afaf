import test from 'node:test';
import assert from 'node:assert/strict';
import {formatValue, formatCount, formatShape} from '../../frontend/model/numbers.js';

test('formatValue keeps 3 significant digits', () => {
  assert.equal(formatValue(0.012345), '0.0123');
  assert.equal(formatValue(1.5), '1.5');
  assert.equal(formatValue(-2), '-2');
  assert.equal(formatValue(123.456), '123');
  assert.equal(formatValue(0), '0');
});

test('formatValue uses exponents for tiny and large values', () => {
  assert.equal(formatValue(12345), '1.23e4');
  assert.equal(formatValue(-1e-7), '-1e-7');
  assert.equal(formatValue(0.00012345), '1.23e-4');
});

test('formatValue names non-finite and missing values', () => {
  assert.equal(formatValue(NaN), 'NaN');
  assert.equal(formatValue(Infinity), '+Inf');
  assert.equal(formatValue(-Infinity), '-Inf');
  assert.equal(formatValue(null), '–');
});

test('formatCount uses SI suffixes', () => {
  assert.equal(formatCount(950), '950');
  assert.equal(formatCount(1234), '1.23k');
  assert.equal(formatCount(2.5e6), '2.5M');
  assert.equal(formatCount(999999), '1M');
  assert.equal(formatCount(3e9), '3G');
  assert.equal(formatCount(0), '0');
});

test('formatShape', () => {
  assert.equal(formatShape([3, 3, 16, 32]), '3×3×16×32');
  assert.equal(formatShape([null, 10]), '?×10');
  assert.equal(formatShape([]), 'scalar');
});

test('formatTicks adds digits only when neighbouring labels would collide', async () => {
  const {formatTicks} = await import('../../frontend/model/numbers.js');
  assert.deepEqual(formatTicks([0, 0.5, 1]), ['0', '0.5', '1']);
  assert.deepEqual(formatTicks([1.8701, 1.8702, 1.8703]), ['1.8701', '1.8702', '1.8703']);
  assert.deepEqual(formatTicks([0.9995, 1]), ['0.9995', '1']);
});
