// The findings list in the sidebar: per selected run, counts per severity
// and one line per finding (severity colour, kind, tag, message, when); a
// line is a button that opens the tensor at the finding's first step.

import {clear, el, errorBox} from './dom.js';
import {findingUnits, findingWhen, kindName, orderFindings, severityCounts, severityOf, SEVERITIES} from '../model/findings.js';

export class FindingsList {
  /** @param {{onOpen: function(string, Object)}} handlers onOpen(run, finding). */
  constructor({onOpen}) {
    this.onOpen = onOpen;
    this.body = el('div', {class: 'findings-body'});
    this.root = el('section', {class: 'card sidebar-card findings-card'}, [el('h2', {text: 'Findings'}), this.body]);
    this.key = null;
  }

  /** @param {Array<{run, color, findings: ?Object, error: ?Error}>} runs */
  render(runs) {
    const key = JSON.stringify(runs.map((r) => [r.run, r.findings, r.error && r.error.message]));
    if (key === this.key) return;
    this.key = key;
    const focused = this.body.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    clear(this.body);
    if (!runs.length) {
      this.body.appendChild(el('div', {class: 'note', text: 'Select a run.'}));
      return;
    }
    for (const r of runs) this.body.appendChild(this.runSection(r, runs.length > 1));
    if (focused) {
      const again = [...this.body.querySelectorAll('.finding')].find((b) => b.dataset.key === focused);
      if (again) again.focus();
    }
  }

  runSection(r, named) {
    const section = el('div', {class: 'findings-run', attrs: {'data-run': r.run}});
    if (named) {
      const swatch = el('span', {class: 'swatch'});
      swatch.style.background = r.color;
      section.appendChild(el('div', {class: 'findings-run-name'}, [swatch, el('span', {class: 'run-name', text: r.run})]));
    }
    if (!r.findings) {
      if (!r.error) section.appendChild(el('div', {class: 'note', text: 'loading…'}));
      else if (r.error.status === 404) section.appendChild(el('div', {class: 'note', text: 'No findings for this run (the server has none for it).'}));
      else section.appendChild(errorBox(`findings unavailable: ${r.error.message}`));
      return section;
    }
    const findings = orderFindings(r.findings);
    const counts = severityCounts(findings);
    const chips = SEVERITIES.map((s) => el('span', {class: `severity-count sev-${s}` + (counts[s] ? ' present' : ''),
      text: `${counts[s]} ${s}${counts[s] === 1 ? '' : s === 'info' ? '' : 's'}`, attrs: {'data-severity': s}}));
    section.appendChild(el('div', {class: 'severity-counts'}, chips));
    if (!findings.length) {
      section.appendChild(el('div', {class: 'note', text: 'Nothing unusual in the recorded stats.'}));
      return section;
    }
    const list = el('ul', {class: 'findings-list'});
    findings.forEach((f, k) => {
      const severity = severityOf(f);
      const when = findingWhen(f);
      const units = findingUnits(f);
      const button = el('button', {
        class: `finding sev-${severity}`,
        title: `open ${f.tag}${Number.isFinite(f.first_step) ? ` at step ${f.first_step}` : ''}` +
            (units.length ? `, ${units.length} unit${units.length === 1 ? '' : 's'} marked` : ''),
        attrs: {'type': 'button', 'data-key': `${r.run}|${k}`, 'data-kind': f.kind, 'data-tag': f.tag,
          'data-step': Number.isFinite(f.first_step) ? f.first_step : ''},
        on: {click: () => this.onOpen(r.run, f)},
      }, [
        el('span', {class: 'severity-dot', attrs: {'aria-label': severity}}),
        el('span', {class: 'finding-main'}, [
          el('span', {class: 'finding-head'}, [el('span', {class: 'finding-kind', text: kindName(f.kind)}),
            el('span', {class: 'finding-tag', text: f.tag})]),
          el('span', {class: 'finding-message', text: f.message || ''}),
          when ? el('span', {class: 'finding-when', text: when}) : null,
        ]),
      ]);
      list.appendChild(el('li', {}, [button]));
    });
    section.appendChild(list);
    return section;
  }
}
