// A small Markdown renderer for the postmortem drafts Cairn writes: headings,
// paragraphs, lists, tables, fenced code, inline code, bold, italics, links
// and images. It builds DOM nodes with text only (never innerHTML), so
// nothing in a draft can become markup. Links leave the page only as text;
// images are not loaded (the chart is drawn above the draft).

export function renderMarkdown(root, md, h) {
  const lines = md.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  let para = [];
  const flush = () => {
    if (para.length) root.append(h("p", {}, inline(para.join(" "), h)));
    para = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(`{3,})(\S*)\s*$/);
    if (fence) {
      flush();
      const indent = line.match(/^\s*/)[0].length;
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) {
        body.push(lines[i].slice(Math.min(indent, lines[i].match(/^\s*/)[0].length)));
        i++;
      }
      i++;
      root.append(h("pre", { class: fence[2] === "diff" ? "diff" : null }, h("code", {}, body.join("\n"))));
      continue;
    }
    const head = line.match(/^(#{1,6})\s+(.*)$/);
    if (head) {
      flush();
      // The page already has its h1 and section h2s: a draft's headings sit one level below.
      const level = Math.min(6, head[1].length + 1);
      root.append(h("h" + level, {}, inline(head[2], h)));
      i++;
      continue;
    }
    if (/^\s*\|.*\|\s*$/.test(line) && i + 1 < lines.length && /^\s*\|[\s|:-]+\|\s*$/.test(lines[i + 1])) {
      flush();
      const cells = (l) => splitRow(l.trim());
      const headCells = cells(line);
      i += 2;
      const rows = [];
      while (i < lines.length && /^\s*\|.*\|\s*$/.test(lines[i])) {
        rows.push(cells(lines[i]));
        i++;
      }
      root.append(h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, headCells.map((c) => h("th", { scope: "col" }, inline(c, h))))),
        h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, inline(c, h)))))))));
      continue;
    }
    if (/^\s*[-*]\s+/.test(line)) {
      flush();
      const ul = h("ul", {});
      while (i < lines.length && /^\s*[-*]\s+/.test(lines[i])) {
        let item = lines[i].replace(/^\s*[-*]\s+/, "");
        i++;
        // Continuation lines of the item (indented, not a new item or fence).
        while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !/^\s*[-*]\s+/.test(lines[i]) && !/^\s*`{3,}/.test(lines[i])) {
          item += " " + lines[i].trim();
          i++;
        }
        const li = h("li", {}, inline(item, h));
        // A fenced block indented under the item belongs to it.
        if (i + 1 < lines.length && lines[i].trim() === "" && /^\s+`{3,}/.test(lines[i + 1])) {
          i++;
          const sub = h("div", {});
          const fenceLine = lines[i];
          const f = fenceLine.trim().match(/^(`{3,})(\S*)/);
          const body = [];
          i++;
          while (i < lines.length && !lines[i].trim().startsWith(f[1])) { body.push(lines[i].replace(/^\s{2}/, "")); i++; }
          i++;
          sub.append(h("pre", { class: f[2] === "diff" ? "diff" : null }, h("code", {}, body.join("\n"))));
          li.append(sub);
        }
        ul.append(li);
      }
      root.append(ul);
      continue;
    }
    if (line.trim() === "") { flush(); i++; continue; }
    para.push(line.trim());
    i++;
  }
  flush();
}

function splitRow(l) {
  const inner = l.replace(/^\|/, "").replace(/\|$/, "");
  const out = [];
  let cur = "";
  for (let k = 0; k < inner.length; k++) {
    if (inner[k] === "\\" && inner[k + 1] === "|") { cur += "|"; k++; continue; }
    if (inner[k] === "|") { out.push(cur.trim()); cur = ""; continue; }
    cur += inner[k];
  }
  out.push(cur.trim());
  return out;
}

// inline renders code spans, images, links, bold and italics as nodes.
function inline(s, h) {
  const out = [];
  const re = /(`+)([\s\S]*?[^`])\1(?!`)|!\[([^\]]*)\]\(([^)\s]+)\)|\[([^\]]+)\]\(([^)\s]+)\)|\*\*([^*]+)\*\*|(?<![\w\\])_([^_]+)_(?!\w)/g;
  let last = 0;
  let m;
  while ((m = re.exec(s)) !== null) {
    if (m.index > last) out.push(s.slice(last, m.index));
    if (m[1]) out.push(h("code", {}, m[2].trim()));
    else if (m[4] !== undefined) out.push(h("span", { class: "muted" }, `[${m[3] || "image"}: ${m[4]}, shown above]`));
    else if (m[6] !== undefined) {
      const href = m[6];
      if (href.startsWith("#/") || href.startsWith("/ui/")) out.push(h("a", { href: href.startsWith("/ui/") ? href.slice(4) || "#/" : href }, m[5]));
      else out.push(m[5], " (", h("code", {}, href), ")");
    } else if (m[7]) out.push(h("strong", {}, m[7]));
    else if (m[8]) out.push(h("em", {}, m[8]));
    last = re.lastIndex;
  }
  if (last < s.length) out.push(s.slice(last));
  return out;
}
