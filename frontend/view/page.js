// Building the page: the sidebar (runs, layers), the toolbar and step bar,
// the tensor view and the overview, wired to the controller; and the page's
// own keys (arrows, Home/End, space).

import {StatCharts} from './charts.js';
import {StepBar, Toolbar} from './controls.js';
import {clear, el, errorBox} from './dom.js';
import {DynamicsMap} from './dynamics_map.js';
import {FindingsList} from './findings_view.js';
import {Overview} from './overview.js';
import {LayerList, RunPicker} from './sidebar.js';
import {UnitsView} from './units_view.js';

export class Page {
  /**
   * @param {Element} root where the page goes.
   * @param {Object} app the controller the controls report to.
   */
  constructor(root, app) {
    this.app = app;
    const settings = app.settings;
    this.status = el('div', {class: 'status', attrs: {role: 'status'}});
    this.runPicker = new RunPicker({onToggle: (run, on) => app.toggleRun(run, on)});
    this.layerList = new LayerList({
      stat: settings.layerStat,
      onSelect: (tag) => app.selectTag(tag),
      onStat: (stat) => app.changeSetting('layerStat', stat),
    });
    this.toolbar = new Toolbar(settings, (key, value) => app.changeSetting(key, value), app.viewport);
    this.stepBar = new StepBar({
      onIndex: (i) => app.setStepIndex(i),
      onPlay: () => app.playback.toggle(),
      onSpeed: (speed) => (settings.speed = speed),
    }, settings.speed);
    this.tensorTitle = el('h2', {class: 'tensor-title'});
    this.panelArea = el('div', {class: 'panels'});
    this.legend = el('div', {class: 'card legend', attrs: {id: 'legend'}});
    this.charts = new StatCharts((step) => app.setStep(step));
    this.unitsView = new UnitsView({
      stat: settings.unitsStat,
      onStat: (stat) => (settings.unitsStat = stat),
      load: (run, tag, stat, quantity) => app.loader.units(run, tag, stat, quantity),
    });
    this.findings = new FindingsList({onOpen: (run, finding) => app.openFinding(run, finding)});
    this.overview = new Overview((tag) => app.openTensor(tag));
    this.tensorView = el('div', {class: 'tensor-view'}, [
      el('div', {class: 'tensor-head'}, [this.tensorTitle, this.toolbar.zoom]), this.panelArea, this.legend,
      el('h3', {class: 'section-title', text: 'Stats over time'}), this.charts.root, this.unitsView.root,
    ]);
    this.overviewView = el('div', {class: 'overview-view', attrs: {hidden: true}}, [this.overview.root]);
    this.dynamicsMap = new DynamicsMap({
      stat: settings.mapStat,
      onStat: (stat) => {
        settings.mapStat = stat;
        app.renderMap();
      },
      onOpen: (tag, step) => app.openTensor(tag, step),
    });
    this.mapView = el('div', {class: 'map-view', attrs: {hidden: true}}, [this.dynamicsMap.root]);
    const sidebar = el('aside', {class: 'sidebar'}, [this.runPicker.root, this.findings.root, this.layerList.root]);
    const main = el('main', {class: 'main'}, [this.status, this.toolbar.root, this.stepBar.root, this.tensorView, this.overviewView, this.mapView]);
    root.appendChild(el('div', {class: 'nnviz'}, [sidebar, main]));
    document.addEventListener('keydown', (e) => this.onKey(e));
    window.addEventListener('resize', () => {
      app.drawing.redrawPanels();
      if (!this.mapView.hidden) this.dynamicsMap.redraw();
    });
  }

  /** Shows the view named `view` ('tensor', 'overview' or 'map'), hides the others. */
  showView(view) {
    this.tensorView.hidden = view !== 'tensor';
    this.overviewView.hidden = view !== 'overview';
    this.mapView.hidden = view !== 'map';
  }

  /** The page's keys: arrows and Home/End move the step, space plays or pauses. */
  onKey(e) {
    const app = this.app;
    const t = e.target;
    const tag = t && t.tagName;
    if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA' || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      app.playback.pause();
      app.setStepIndex(app.stepIndex + (e.key === 'ArrowRight' ? 1 : -1));
    } else if (e.key === 'Home') {
      app.setStepIndex(0);
    } else if (e.key === 'End') {
      app.setStepIndex(app.steps.length - 1);
    } else if (e.key === ' ' && tag !== 'BUTTON') {
      app.playback.toggle();
    } else {
      return;
    }
    e.preventDefault();
  }

  /** A note (or an error) above the views; '' clears it. */
  showStatus(message, error = false) {
    clear(this.status);
    if (message) this.status.appendChild(error ? errorBox(message) : el('div', {class: 'note', text: message}));
  }
}
