// Playback: stepping through the snapshots at a chosen speed, with the
// frames of the coming steps requested before they are needed.

import {framesFor} from '../model/modes.js';

export const PREFETCH_AHEAD = 24;

export class Playback {
  /**
   * @param {Object} app the controller: steps, stepIndex, settings, tag,
   *   displayRuns(), runData, cache, stepBar, onStepChanged().
   */
  constructor(app) {
    this.app = app;
    this.playing = false;
    this.prefetchAhead = PREFETCH_AHEAD;
  }

  toggle() {
    this.playing ? this.pause() : this.play();
  }

  play() {
    const app = this.app;
    if (this.playing || app.steps.length < 2) return;
    if (app.stepIndex >= app.steps.length - 1) app.stepIndex = 0;
    this.playing = true;
    app.stepBar.update(app.steps, app.stepIndex, true);
    this.loop();
  }

  pause() {
    if (!this.playing) return;
    this.playing = false;
    this.app.stepBar.update(this.app.steps, this.app.stepIndex, false);
  }

  async loop() {
    const app = this.app;
    // Steps are due at fixed times (start + k · interval), so the time a
    // frame takes to draw does not add up into a slower playback.
    let due = performance.now();
    while (this.playing) {
      this.prefetch();
      await app.onStepChanged();
      if (!this.playing) break;
      if (app.stepIndex >= app.steps.length - 1) {
        this.pause();
        break;
      }
      const interval = app.settings.speed === 'max' ? 0 : 1000 / Number(app.settings.speed);
      due += interval;
      const now = performance.now();
      if (due < now - interval) due = now; // fell behind: do not rush to catch up
      const wait = due - now;
      // Let the browser paint; wait out the rest of the frame interval.
      await new Promise((resolve) => (wait > 12 ? setTimeout(resolve, wait - 4) : requestAnimationFrame(resolve)));
      if (this.playing) app.stepIndex += 1;
    }
  }

  /** Requests the frames of the next steps of what is on screen. */
  prefetch() {
    const app = this.app;
    const upcoming = app.steps.slice(app.stepIndex + 1, app.stepIndex + 1 + this.prefetchAhead);
    for (const run of app.displayRuns()) {
      const tensor = app.runData.get(run)?.tensors.get(app.tagOf(run));
      if (!tensor) continue;
      const steps = new Set();
      for (const s of upcoming) for (const f of framesFor(app.settings.mode, tensor.steps, s)) steps.add(f);
      app.cache.prefetch(run, app.tagOf(run), steps, app.quantity);
    }
  }
}
