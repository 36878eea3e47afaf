// The sidebar: the run picker (several runs, a stable colour each) and the
// layer list in model order (nesting, class, shape, params, branches and
// merges), coloured by a dynamics stat at the current step.

import {colormapCSS} from '../model/colors.js';
import {clear, el, errorBox, labelled, select} from './dom.js';
import {formatCount, formatShape, formatValue} from '../model/numbers.js';
import {layerPositions, layerValue} from '../model/quantities.js';

// The first is offered only for a run that records gradients (grad, else v_rms).
export const GRADIENT_STAT = ['grad_rms', 'gradient RMS'];

export const LAYER_STATS = [
  GRADIENT_STAT,
  ['update_ratio', 'update ratio'],
  ['update_l2', 'update ‖ΔW‖'],
  ['init_l2', 'distance from init'],
  ['init_angle', '1 − cos to init'],
  ['std', 'std'],
  ['l2', 'L2 norm'],
];

/** The /stats fields a layer colour `stat` is computed from. */
export function layerStatFields(stat) {
  return stat === 'init_angle' ? ['init_cos'] : [stat];
}


export class RunPicker {
  /** @param {{onToggle: function(string, boolean)}} handlers */
  constructor({onToggle}) {
    this.onToggle = onToggle;
    this.list = el('div', {class: 'run-list', attrs: {role: 'group', 'aria-label': 'runs'}});
    this.root = el('section', {class: 'card sidebar-card'}, [el('h2', {text: 'Runs'}), this.list]);
  }

  /** @param {Array<{run, steps, tags}>} runs @param {Array<string>} selected @param colors RunColors */
  render(runs, selected, colors) {
    const focused = this.list.contains(document.activeElement) ? document.activeElement.dataset.run : null;
    clear(this.list);
    if (runs.length === 0) {
      this.list.appendChild(el('div', {class: 'note', text: 'No runs with nnviz data yet.'}));
      return;
    }
    for (const info of runs) {
      const box = el('input', {class: 'run-checkbox', attrs: {type: 'checkbox', 'data-run': info.run}});
      box.checked = selected.includes(info.run);
      box.addEventListener('change', () => this.onToggle(info.run, box.checked));
      const swatch = el('span', {class: 'swatch'});
      swatch.style.background = colors.get(info.run);
      const last = info.steps.length ? info.steps[info.steps.length - 1] : null;
      this.list.appendChild(el('label', {class: 'run-item'}, [
        box,
        swatch,
        el('span', {class: 'run-name', text: info.run}),
        el('span', {class: 'muted run-meta',
          text: `${info.steps.length} snapshot${info.steps.length === 1 ? '' : 's'}` +
              (last !== null ? ` · step ${last}` : '')}),
      ]));
      if (info.run === focused) box.focus();
    }
  }
}

export class LayerList {
  /** @param {{onSelect: function(string), onStat: function(string)}} handlers */
  constructor({onSelect, onStat, stat}) {
    this.onSelect = onSelect;
    this.stat = stat;
    this.body = el('div', {class: 'layer-list'});
    this.title = el('h2', {text: 'Layers'});
    this.statSelect = select(LAYER_STATS.slice(1), stat, (v) => {
      this.stat = v;
      onStat(v);
    }, {id: 'layer-stat', 'aria-label': 'colour layers by'});
    this.root = el('section', {class: 'card sidebar-card layers-card'}, [
      this.title,
      labelled('colour by', this.statSelect),
      this.body,
    ]);
    this.badges = [];
  }

  /** Offers (or withdraws) colouring by gradient RMS, and shows the stat in use. */
  offerGradient(offered, stat) {
    const has = this.statSelect.options[0].value === GRADIENT_STAT[0];
    if (offered && !has) {
      this.statSelect.insertBefore(el('option', {text: GRADIENT_STAT[1], attrs: {value: GRADIENT_STAT[0]}}),
          this.statSelect.options[0]);
    } else if (!offered && has) {
      this.statSelect.remove(0);
    }
    this.stat = stat;
    this.statSelect.value = stat;
  }

  showError(message) {
    clear(this.body);
    this.badges = [];
    this.body.appendChild(errorBox(message));
  }

  /**
   * @param {Array} rows from structure.layerRows.
   * @param {?string} current the selected tag.
   * @param {?string} modelName shown in the title.
   * @param {?string} structureError shown above the list (tags still listed).
   */
  render(rows, current, modelName, structureError) {
    // Live updates re-render the list: keep its scroll position and focus.
    const scroll = this.body.scrollTop;
    const focused = this.body.contains(document.activeElement) ? document.activeElement.dataset.tag : null;
    clear(this.body);
    this.badges = [];
    this.title.textContent = modelName ? `Layers · ${modelName}` : 'Layers';
    if (structureError) this.body.appendChild(el('div', {class: 'note', text: `structure unavailable: ${structureError}`}));
    for (const row of rows) {
      const meta = [];
      if (row.class) meta.push(row.class);
      if (row.outputShape) meta.push(formatShape(row.outputShape));
      if (row.params !== null && row.params !== undefined) meta.push(`${formatCount(row.params)} params`);
      const flow = [];
      if (row.merge) {
        flow.push(el('span', {class: 'flow merge', text: `merge ← ${row.inbound.length}`, title: `merges ${row.inbound.join(', ')}`}));
      }
      if (row.branch) {
        flow.push(el('span', {class: 'flow branch', text: `branch → ${row.consumers.length}`, title: `feeds ${row.consumers.join(', ')}`}));
      }
      const head = el('div', {class: 'layer-head' + (row.synthetic ? ' synthetic' : '')}, [
        el('span', {class: 'layer-name', text: row.name, title: row.path}),
        el('span', {class: 'muted layer-meta', text: meta.join(' · ')}),
        ...flow,
      ]);
      const item = el('div', {class: 'layer-row', attrs: {'data-path': row.path}}, [head]);
      item.style.paddingLeft = `${4 + 12 * row.depth}px`;
      for (const w of row.weights) {
        const badge = el('span', {class: 'stat-badge'}, [el('span', {class: 'stat-bar'}), el('span', {class: 'stat-text'})]);
        const button = el('button', {
          class: 'weight' + (w.tag === current ? ' selected' : '') + (w.recorded ? '' : ' unrecorded'),
          attrs: {'type': 'button', 'data-tag': w.tag, 'aria-pressed': w.tag === current ? 'true' : 'false', 'disabled': !w.recorded},
          title: w.recorded ? w.tag : `${w.tag} (not recorded)`,
          on: {click: () => this.onSelect(w.tag)},
        }, [
          el('span', {class: 'weight-name', text: w.name}),
          el('span', {class: 'muted weight-shape', text: formatShape(w.shape)}),
          badge,
        ]);
        item.appendChild(button);
        this.badges.push({tag: w.tag, badge});
      }
      this.body.appendChild(item);
    }
    this.body.scrollTop = scroll;
    if (focused) {
      const again = [...this.body.querySelectorAll('.weight')].find((b) => b.dataset.tag === focused);
      if (again) again.focus();
    }
  }

  /** Colours the weights by the chosen stat at `step` (stats: {tag: series}). */
  colour(stats, step) {
    const values = this.badges.map(({tag}) => layerValue(stats && stats[tag], this.stat, step));
    const {positions, log} = layerPositions(values);
    this.body.dataset.colour = `${this.stat}${log ? ' log' : ''}`;
    this.badges.forEach(({badge}, k) => {
      const v = values[k];
      const bar = badge.firstChild;
      const text = badge.lastChild;
      badge.dataset.value = v === null ? '' : v;
      if (positions[k] === null) {
        bar.style.width = '0';
        text.textContent = '–';
        badge.title = 'no value at this step';
        return;
      }
      const t = positions[k];
      bar.style.width = `${Math.round(4 + 36 * t)}px`;
      bar.style.background = colormapCSS('magma', 0.25 + 0.7 * t);
      text.textContent = formatValue(v);
      badge.title = `${LAYER_STATS.find(([k]) => k === this.stat)[1]}: ${formatValue(v)}`;
    });
  }
}
