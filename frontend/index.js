// Entry point: TensorBoard loads this ES module in the plugin's iframe and
// calls render(). Everything else is fetched relative to this module.

import {App} from './app.js';

export async function render() {
  const style = document.createElement('link');
  style.rel = 'stylesheet';
  style.href = new URL('./style.css', import.meta.url).href;
  document.head.appendChild(style);
  const meta = document.createElement('meta');
  meta.name = 'color-scheme';
  meta.content = 'light dark';
  document.head.appendChild(meta);
  document.title = 'nnviz';
  const app = new App(document.body);
  // For the browser tests and the playback benchmark: state, not a control.
  window.nnviz = app;
  await app.start();
}
