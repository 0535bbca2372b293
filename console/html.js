// htm bound to preact's h: JSX-like tagged templates with no build step.
import { h } from "preact";
import htm from "htm";

/** `html\`<div class=${c}>${children}</div>\`` → a preact element. */
export const html = htm.bind(h);
