// Number formatting like TensorBoard's: 3 significant digits, SI suffixes
// for large counts. Pure: no DOM, tested by node --test.

const SI = [
  [1e12, 'T'],
  [1e9, 'G'],
  [1e6, 'M'],
  [1e3, 'k'],
];

/** Strips trailing zeros of a fixed/precision string ("1.50" → "1.5"). */
function trimZeros(s) {
  if (s.indexOf('e') >= 0) {
    const [m, e] = s.split('e');
    return trimZeros(m) + 'e' + e.replace('+', '');
  }
  return s.indexOf('.') >= 0 ? s.replace(/\.?0+$/, '') : s;
}

/**
 * A value with 3 significant digits: 0.0123, 1.23, 123, 1.23e+4 → "1.23e4",
 * tiny values in exponent form. null/undefined → "–"; NaN and ±Inf named.
 */
export function formatValue(x) {
  if (x === null || x === undefined) return '–';
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return '+Inf';
  if (x === -Infinity) return '-Inf';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e-3 && a < 1e4) return trimZeros(x.toPrecision(3));
  return trimZeros(x.toExponential(2));
}

/** A count: 950 → "950", 1234 → "1.23k", 2.5e6 → "2.5M". */
export function formatCount(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return formatValue(n);
  const a = Math.abs(n);
  for (const [limit, suffix] of SI) {
    if (a >= limit) {
      let s = trimZeros((n / limit).toPrecision(3));
      // 999.9k rounds to "1.00e+3k": move up one suffix instead.
      if (Math.abs(Number(s)) >= 1000 && limit < 1e12) {
        return formatCount(Math.sign(n) * 1000 * limit);
      }
      return s + suffix;
    }
  }
  return Number.isInteger(n) ? String(n) : formatValue(n);
}

/** A tensor shape as "3×3×16×32" (a scalar: "scalar"). */
export function formatShape(shape) {
  if (!shape || shape.length === 0) return 'scalar';
  return shape.map((d) => (d === null || d === undefined ? '?' : String(d))).join('×');
}

/**
 * Labels for axis ticks: 3 significant digits unless neighbours would read
 * the same (ticks 1.8701 and 1.8702), then as many more as tell them apart.
 */
export function formatTicks(ticks, format = formatValue) {
  for (let digits = 3; digits <= 8; digits++) {
    const labels = ticks.map((t) => (digits === 3 ? format(t) : formatPrecise(t, digits)));
    if (new Set(labels).size === labels.length) return labels;
  }
  return ticks.map((t) => String(t));
}

function formatPrecise(x, digits) {
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e-3 && a < 1e4) return trimZeros(x.toPrecision(digits));
  return trimZeros(x.toExponential(digits - 1));
}
