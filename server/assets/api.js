"use strict";
// Renders /v1/openapi.json as a readable reference: operations by tag with their parameters,
// bodies and responses. Text from the document is set with textContent.
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}
function schemaText(s, components, depth = 0) {
  if (!s) return "";
  if (s.$ref) {
    const name = s.$ref.split("/").pop();
    return depth > 2 ? name : name + " " + schemaText(components[name], components, depth + 1);
  }
  return JSON.stringify(s, null, 1);
}
(async () => {
  const doc = await (await fetch("/v1/openapi.json")).json();
  const root = document.getElementById("doc");
  const comps = (doc.components && doc.components.schemas) || {};
  const intro = el("pre", "", doc.info.description || "");
  root.append(intro);
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([method, path, op]);
    }
  }
  for (const [tag, ops] of byTag) {
    root.append(el("h2", "", tag));
    for (const [method, path, op] of ops) {
      const box = el("div", "op");
      const head = el("div");
      head.append(el("span", "m " + method, method.toUpperCase()), el("code", "", path));
      if (op.security) head.append(el("span", "muted", "  · bearer token"));
      box.append(head);
      if (op.description || op.summary) box.append(el("p", "", op.description || op.summary));
      if (op.parameters && op.parameters.length) {
        const t = el("table");
        for (const p of op.parameters) {
          const tr = el("tr");
          tr.append(el("td", "", p.name), el("td", "muted", p.in), el("td", "", p.description || ""));
          t.append(tr);
        }
        box.append(t);
      }
      if (op.requestBody) {
        for (const [type, c] of Object.entries(op.requestBody.content)) {
          box.append(el("div", "muted", "request " + type), el("pre", "", schemaText(c.schema, comps)));
        }
      }
      for (const [status, r] of Object.entries(op.responses)) {
        const line = el("div", "", status + ": " + (r.description || ""));
        box.append(line);
        const c = r.content && Object.values(r.content)[0];
        if (c && c.schema && status !== "default") box.append(el("pre", "", schemaText(c.schema, comps)));
      }
      root.append(box);
    }
  }
})();
