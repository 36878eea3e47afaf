// Small DOM helpers. Text from the server (run, layer and tag names) always
// goes in through textContent, never as HTML.

/**
 * Creates an element. `props`: {class, text, title, attrs: {...}, on: {event: fn}}.
 * Children: nodes or strings (strings become text nodes).
 */
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  if (props.class) node.className = props.class;
  if (props.text !== undefined && props.text !== null) node.textContent = String(props.text);
  if (props.title !== undefined) node.title = String(props.title);
  for (const [k, v] of Object.entries(props.attrs || {})) {
    if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const [k, v] of Object.entries(props.on || {})) node.addEventListener(k, v);
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Creates an SVG element with attributes. */
export function svg(tag, attrs = {}, children = []) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const child of children) node.appendChild(child);
  return node;
}

/** A <select> with [value, label] options. */
export function select(options, value, onChange, attrs = {}) {
  const node = el('select', {attrs});
  for (const [v, label] of options) {
    node.appendChild(el('option', {text: label, attrs: {value: v}}));
  }
  node.value = value;
  node.addEventListener('change', () => onChange(node.value));
  return node;
}

/** A labelled control: <label>text <control></label>. */
export function labelled(text, control) {
  return el('label', {class: 'control'}, [el('span', {text}), control]);
}

/** An in-place error message (textContent: server messages can contain anything). */
export function errorBox(message) {
  return el('div', {class: 'error', text: message, attrs: {role: 'alert'}});
}

/** Removes every child of a node. */
export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}
