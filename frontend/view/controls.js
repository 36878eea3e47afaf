// The toolbar (view, mode, colour scale, zoom) and the step bar (range
// input over the snapshot steps, play/pause, speed).

import {colormapNames} from '../model/colors.js';
import {logApplies, quantityInfo, selectorVisible} from '../model/quantities.js';
import {clear, el, labelled, select} from './dom.js';

export const MODES = [
  ['values', 'values'],
  ['delta_first', 'Δ from first snapshot'],
  ['delta_prev', 'Δ from previous snapshot'],
  ['diff', 'run A − run B'],
];

export const VIEWS = [['tensor', 'tensor'], ['overview', 'overview'], ['map', 'dynamics map']];

export const SPEEDS = [['1', '1 fps'], ['2', '2 fps'], ['5', '5 fps'], ['10', '10 fps'], ['30', '30 fps'], ['max', 'max']];

export class Toolbar {
  /** @param settings the app's settings object; `onChange(key, value)` on every edit. */
  constructor(settings, onChange, viewport) {
    const set = (key) => (value) => onChange(key, value);
    this.view = select(VIEWS, settings.view, set('view'), {id: 'view', 'aria-label': 'view'});
    this.mode = select(MODES, settings.mode, set('mode'), {id: 'mode', 'aria-label': 'mode'});
    this.runA = select([], '', set('runA'), {id: 'run-a', 'aria-label': 'run A'});
    this.runB = select([], '', set('runB'), {id: 'run-b', 'aria-label': 'run B'});
    this.diffRuns = el('span', {class: 'diff-runs'}, [labelled('A', this.runA), labelled('B', this.runB)]);
    this.colorKind = select([['diverging', 'diverging (signed)'], ['magnitude', 'sequential |x|']], settings.colorKind,
        set('colorKind'), {id: 'color-kind', 'aria-label': 'colour scale'});
    this.cmap = select([], '', set('cmap'), {id: 'cmap', 'aria-label': 'colormap'});
    this.scaleMode = select([['fixed', 'fixed over steps'], ['frame', 'per frame']], settings.scaleMode, set('scaleMode'),
        {id: 'scale-mode', 'aria-label': 'scale'});
    this.clip = el('input', {attrs: {type: 'checkbox', id: 'clip'}});
    this.clip.checked = settings.clip;
    this.clip.addEventListener('change', () => onChange('clip', this.clip.checked));
    // What the views show: the weights, or a recorded quantity (only those of the tensor shown are offered).
    this.quantity = select([['weights', 'weights']], 'weights', set('quantity'), {id: 'quantity', 'aria-label': 'quantity'});
    this.quantityControl = labelled('show', this.quantity);
    this.logScale = el('input', {attrs: {type: 'checkbox', id: 'log-scale'}});
    this.logScale.checked = settings.logScale;
    this.logScale.addEventListener('change', () => onChange('logScale', this.logScale.checked));
    this.logControl = el('label', {class: 'control', title: 'colours and charts of |x| on a log scale, Adam\'s ε marked'},
        [this.logScale, el('span', {text: 'log |x|'})]);
    const zoomButton = (text, label, fn) => el('button', {class: 'icon-button', text, title: label, attrs: {type: 'button', 'aria-label': label}, on: {click: fn}});
    // Controls of the heatmaps, hidden in the dynamics map (always sequential, its own scale).
    this.heatmapOnly = [
      labelled('mode', this.mode),
      labelled('colour', this.colorKind),
      labelled('scale', this.scaleMode),
      el('label', {class: 'control', title: 'clip the scale at the 1st/99th percentile'}, [this.clip, el('span', {text: 'clip 1–99%'})]),
    ];
    const [mode, colour, scale, clip] = this.heatmapOnly;
    this.root = el('div', {class: 'card toolbar'}, [
      labelled('view', this.view), this.quantityControl, this.logControl, mode, this.diffRuns, colour,
      labelled('map', this.cmap), scale, clip,
    ]);
    // Placed by the app next to the tensor's title.
    this.zoom = el('span', {class: 'zoom-buttons'}, [
      zoomButton('+', 'zoom in', () => viewport.zoomBy(1.25)),
      zoomButton('−', 'zoom out', () => viewport.zoomBy(0.8)),
      zoomButton('fit', 'reset zoom', () => viewport.reset()),
    ]);
    this.update(settings, []);
  }

  /**
   * Reflects settings, the runs available for A − B, the quantities
   * `offered` and the one `shown` (the selector is hidden when only the
   * weights were recorded).
   */
  update(settings, runs, offered = ['weights'], shown = 'weights') {
    this.view.value = settings.view;
    this.mode.value = settings.mode;
    fillSelect(this.quantity, offered.map((q) => [q, quantityInfo(q).label]), shown);
    this.quantityControl.hidden = !selectorVisible(offered);
    this.logScale.checked = settings.logScale;
    const log = logApplies(shown) && settings.logScale;
    // A log scale is of |x|: the colour scale is sequential then.
    this.colorKind.value = log ? 'magnitude' : settings.colorKind;
    this.colorKind.disabled = log;
    const sequential = usesSequential(settings, shown);
    const names = colormapNames(sequential ? 'sequential' : 'diverging');
    fillSelect(this.cmap, names.map((n) => [n, n]), sequential ? settings.cmapSequential : settings.cmapDiverging);
    this.scaleMode.value = settings.scaleMode;
    this.clip.checked = settings.clip;
    const map = settings.view === 'map';
    for (const control of this.heatmapOnly) control.hidden = map;
    // The map has its own scale per stat.
    this.logControl.hidden = map || !logApplies(shown);
    this.diffRuns.hidden = map || settings.mode !== 'diff';
    fillSelect(this.runA, runs.map((r) => [r, r]), settings.runA);
    fillSelect(this.runB, runs.map((r) => [r, r]), settings.runB);
  }
}

/** True when the colormap in use is a sequential one (magnitudes, a log scale, the dynamics map). */
export function usesSequential(settings, quantity = 'weights') {
  return settings.view === 'map' || settings.colorKind === 'magnitude' || (settings.logScale && logApplies(quantity));
}

function fillSelect(node, options, value) {
  const same = node.options.length === options.length && options.every(([v], i) => node.options[i].value === v);
  if (!same) {
    clear(node);
    for (const [v, label] of options) node.appendChild(el('option', {text: label, attrs: {value: v}}));
  }
  if (value !== null && value !== undefined) node.value = value;
}

export class StepBar {
  /** @param {{onIndex: function(number), onPlay: function(), onSpeed: function(string)}} handlers */
  constructor({onIndex, onPlay, onSpeed}, speed) {
    this.slider = el('input', {attrs: {type: 'range', id: 'step-slider', min: 0, max: 0, step: 1, value: 0, 'aria-label': 'step'}});
    this.slider.addEventListener('input', () => onIndex(Number(this.slider.value)));
    this.play = el('button', {class: 'play-button', text: '▶', attrs: {type: 'button', id: 'play', 'aria-label': 'play'}, on: {click: onPlay}});
    this.speed = select(SPEEDS, speed, onSpeed, {id: 'speed', 'aria-label': 'playback speed'});
    this.label = el('span', {class: 'step-label', attrs: {id: 'step-label', 'aria-live': 'polite'}});
    this.root = el('div', {class: 'card step-bar'}, [this.play, this.speed, this.slider, this.label]);
  }

  update(steps, index, playing) {
    this.slider.max = Math.max(0, steps.length - 1);
    this.slider.value = index;
    this.slider.disabled = steps.length < 2;
    this.play.disabled = steps.length < 2;
    this.play.textContent = playing ? '❚❚' : '▶';
    this.play.setAttribute('aria-label', playing ? 'pause' : 'play');
    this.slider.setAttribute('aria-valuetext', steps.length ? `step ${steps[index]}` : 'no steps');
    this.label.textContent = steps.length ?
        `step ${steps[index]}  (${index + 1} / ${steps.length})` : 'no snapshots';
    this.label.dataset.step = steps.length ? steps[index] : '';
  }
}
