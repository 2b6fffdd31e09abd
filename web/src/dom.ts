/** A tiny element builder: the views are plain DOM, no framework. */

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined | null | ((e: Event) => void)>;

const SVG_NS = "http://www.w3.org/2000/svg";
const SVG_TAGS = new Set(["svg", "g", "rect", "line", "text", "title", "path"]);

export function h(tag: string, attrs: Attrs = {}, ...children: (Child | Child[])[]): HTMLElement & SVGElement {
  const el = (SVG_TAGS.has(tag) ? document.createElementNS(SVG_NS, tag) : document.createElement(tag)) as HTMLElement & SVGElement;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return el;
}

