import test from 'node:test';
import assert from 'node:assert/strict';
import {MAX_ZOOM, Viewport} from '../../frontend/model/viewport.js';

test('panels side by side share zoom, pan and the hovered cell', () => {
  const vp = new Viewport();
  let redraws = 0;
  const hovered = [];
  vp.listeners.add(() => redraws++);
  vp.hoverListeners.add((cell) => hovered.push(cell));
  vp.zoomBy(2);
  assert.equal(vp.zoom, 2);
  vp.setHover({r: 1, c: 2});
  assert.deepEqual(hovered, [{r: 1, c: 2}]);
  vp.zoomBy(1000);
  assert.equal(vp.zoom, MAX_ZOOM);
  vp.zoomBy(1e-6);
  assert.deepEqual([vp.zoom, vp.ox, vp.oy], [1, 0, 0], 'fully zoomed out: no pan left');
  assert.equal(redraws, 3);
});

test('zooming at a point keeps the cell under it in place', () => {
  // A heatmap's geometry: the picture (wu × hu cells) centred right of `left`
  // and below `top` in a width × height canvas, moved by the pan (layoutGeometry).
  const width = 400;
  const height = 300;
  const place = (vp, cell) => {
    const left = 2;
    const top = 18;
    const plan = {wu: 10, hu: 6};
    const c = cell * vp.zoom;
    return {x0: left + (width - left - plan.wu * c) / 2 + vp.ox, y0: top + (height - top - plan.hu * c) / 2 + vp.oy,
      cell: c, left, top, plan};
  };
  const vp = new Viewport();
  const x = 150;
  const y = 100;
  for (const factor of [1.25, 1.25, 2, 0.8]) {
    const g = place(vp, 20);
    const before = [(x - g.x0) / g.cell, (y - g.y0) / g.cell];
    vp.zoomAt(factor, x, y, g, width, height);
    const h = place(vp, 20);
    assert.deepEqual([(x - h.x0) / h.cell, (y - h.y0) / h.cell].map((v) => v.toFixed(9)), before.map((v) => v.toFixed(9)));
  }
  vp.zoomAt(0.01, x, y, place(vp, 20), width, height);
  assert.deepEqual([vp.zoom, vp.ox, vp.oy], [1, 0, 0]);
});
