// crampqa page: asks /api/ask and shows the passages verbatim.
// Every piece of text from the server is set with textContent (never innerHTML),
// so passage text is always shown as text, never interpreted as markup.
"use strict";

(function () {
  const form = document.getElementById("ask-form");
  const input = document.getElementById("question");
  const kSelect = document.getElementById("k");
  const results = document.getElementById("results");
  let pending = null;

  // only http and https addresses become links; anything else is shown as text
  function webLink(url) {
    let scheme = "";
    try { scheme = new URL(url).protocol; } catch (e) { scheme = ""; }
    if (scheme !== "http:" && scheme !== "https:") {
      return el("span", "source-url", url);
    }
    const link = el("a", "source-url", url);
    link.href = url;
    link.rel = "noopener noreferrer";
    return link;
  }

  /** Create an element with an optional class and text. */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /** The spans to highlight: none for a weak match, which answers nothing. */
  function highlightsOf(passage) {
    return passage.weak || passage.strength === "weak" ? [] : (passage.highlights || []);
  }

  /** Sorted, clamped, non-overlapping [start, end) spans relative to the passage. */
  function relativeSpans(passage) {
    const length = passage.text.length;
    const spans = highlightsOf(passage)
      .map(function (h) {
        return [Math.max(0, h[0] - passage.start), Math.min(length, h[1] - passage.start)];
      })
      .filter(function (s) { return s[1] > s[0]; })
      .sort(function (a, b) { return a[0] - b[0]; });
    const merged = [];
    for (const span of spans) {
      const last = merged[merged.length - 1];
      if (last && span[0] <= last[1]) last[1] = Math.max(last[1], span[1]);
      else merged.push([span[0], span[1]]);
    }
    return merged;
  }

  /** Text from `offset` (document offsets) with the passage's highlights in <mark>.
   *  Offsets count code points (as Python does), so the text is sliced by code points. */
  function markedText(block, passage, value, offset) {
    const text = Array.from(value);
    const spans = highlightsOf(passage)
      .map(function (h) {
        return [Math.max(0, h[0] - offset), Math.min(text.length, h[1] - offset)];
      })
      .filter(function (s) { return s[1] > s[0]; })
      .sort(function (a, b) { return a[0] - b[0]; });
    let at = 0;
    for (const span of spans) {
      if (span[0] < at) continue;
      if (span[0] > at) {
        block.appendChild(document.createTextNode(text.slice(at, span[0]).join("")));
      }
      block.appendChild(el("mark", null, text.slice(span[0], span[1]).join("")));
      at = span[1];
    }
    if (at < text.length) block.appendChild(document.createTextNode(text.slice(at).join("")));
    return block;
  }

  /** The passage text with its best sentences in <mark>, built from text nodes only. */
  function passageText(passage) {
    const block = el("p", "passage-text");
    const text = passage.text;
    let at = 0;
    for (const span of relativeSpans(passage)) {
      if (span[0] > at) block.appendChild(document.createTextNode(text.slice(at, span[0])));
      block.appendChild(el("mark", null, text.slice(span[0], span[1])));
      at = span[1];
    }
    if (at < text.length) block.appendChild(document.createTextNode(text.slice(at)));
    return block;
  }

  /** A table row as "column: value" lines; every piece is a verbatim slice. */
  function passageCells(passage) {
    const list = el("dl", "passage-cells");
    for (const cell of passage.cells) {
      const row = el("div", "cell");
      row.appendChild(el("dt", "cell-column", cell.column === null ? "" : cell.column));
      const value = el("dd", "cell-value");
      markedText(value, passage, cell.value, cell.start);
      row.appendChild(value);
      list.appendChild(row);
    }
    return list;
  }

  const STRENGTH_WORDS = { strong: "Strong match", partial: "Partial match", weak: "Weak match" };

  /** The article view of a passage; it carries the question, for its way back. */
  function articleHref(passage, question) {
    const params = new URLSearchParams({ source: passage.source_id });
    if (question) {
      params.set("q", question);
      params.set("k", kSelect.value);
    }
    return "/article?" + params.toString();
  }

  function renderPassage(passage, question) {
    const item = el("li", "passage-item");
    const article = el("article", passage.weak ? "passage weak" : "passage");
    const titleId = "passage-title-" + passage.rank;
    article.setAttribute("aria-labelledby", titleId);

    const header = el("header", "passage-header");
    header.appendChild(el("span", "rank", passage.rank + "."));
    const title = el("h3", "passage-title", passage.title || passage.doc_id);
    title.id = titleId;
    header.appendChild(title);
    const strength = passage.weak ? "weak" : (passage.strength || "partial");
    header.appendChild(el("span", "badge strength-" + strength,
      STRENGTH_WORDS[strength] || strength));
    article.appendChild(header);

    if (passage.heading) {
      const heading = el("p", "section-heading");
      heading.appendChild(el("span", "label", "Section: "));
      heading.appendChild(el("span", "heading-text", passage.heading));
      article.appendChild(heading);
    }
    const cells = passage.cells || [];
    if (passage.context && !cells.length && passage.kind === "list") {
      article.appendChild(el("p", "list-intro", passage.context));
    } else if (passage.context && !cells.length) {
      const context = el("div", "table-context");
      context.appendChild(el("span", "label", "Table header"));
      context.appendChild(el("p", "context-text", passage.context));
      article.appendChild(context);
    }
    article.appendChild(cells.length ? passageCells(passage) : passageText(passage));

    const source = el("p", "source");
    source.appendChild(el("span", "label", "Source "));
    const link = el("a", "source-link");
    link.href = articleHref(passage, question);
    link.title = "Read this passage in its article";
    link.appendChild(el("code", "source-id", passage.source_id));
    source.appendChild(link);
    if (passage.url) {
      source.appendChild(document.createTextNode(" · "));
      source.appendChild(webLink(passage.url));
    }
    article.appendChild(source);

    item.appendChild(article);
    return item;
  }

  function renderAnswer(answer) {
    const box = document.createDocumentFragment();
    const passages = answer.passages || [];
    if (answer.abstained) {
      box.appendChild(el("p", "abstain",
        answer.message || "These sources do not cover this question."));
      if (passages.length) {
        box.appendChild(el("h2", "results-heading", "Closest passages (weak matches)"));
      }
    }
    if (answer.note && answer.note !== answer.message) {
      box.appendChild(el("p", "note", answer.note));
    }
    if (!answer.abstained) {
      const count = passages.length === 1 ? "1 passage" : passages.length + " passages";
      box.appendChild(el("h2", "results-heading", count + " from the sources"));
    }
    if (passages.length) {
      const list = el("ol", "passages");
      for (const passage of passages) list.appendChild(renderPassage(passage, answer.question));
      box.appendChild(list);
    }
    box.appendChild(el("p", "disclaimer answer-disclaimer", answer.disclaimer));
    return box;
  }

  /** The note under the question box: the corpus's own, as the server gives it. */
  function showDisclaimer(text) {
    const note = document.getElementById("disclaimer");
    if (text && note.textContent.replace(/\s+/g, " ").trim() !== text) note.textContent = text;
  }

  function show(content) {
    results.replaceChildren(content);
    results.setAttribute("aria-busy", "false");
  }

  function showError(message) {
    const node = el("p", "error", message);
    node.setAttribute("role", "alert");
    show(node);
  }

  async function ask(question, k) {
    if (pending) pending.abort();
    const controller = new AbortController();
    pending = controller;
    results.setAttribute("aria-busy", "true");
    results.replaceChildren(el("p", "status", "Searching the sources…"));
    const params = new URLSearchParams({ q: question, k: String(k) });
    history.replaceState(null, "", "/?" + params.toString());
    try {
      const response = await fetch("/api/ask?" + params.toString(), {
        signal: controller.signal,
        headers: { Accept: "application/json" },
      });
      let data = null;
      try {
        data = await response.json();
      } catch (e) {
        data = null;
      }
      if (!response.ok) {
        showError((data && data.message) || "The server could not answer (" +
          response.status + ").");
        return;
      }
      showDisclaimer(data.disclaimer);
      show(renderAnswer(data));
    } catch (error) {
      if (error && error.name === "AbortError") return;
      showError("The crampqa server could not be reached. Is `crampqa serve` still running?");
    } finally {
      if (pending === controller) pending = null;
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const question = input.value.trim();
    if (!question) {
      showError("Type a question first, for example: why do my calves cramp at night");
      input.focus();
      return;
    }
    ask(question, kSelect.value);
  });

  fetch("/api/health", { headers: { Accept: "application/json" } })
    .then(function (response) { return response.ok ? response.json() : null; })
    .then(function (health) { if (health) showDisclaimer(health.disclaimer); })
    .catch(function () { /* the static note stays */ });

  // A link such as /?q=why+do+my+calves+cramp asks straight away.
  const initial = new URLSearchParams(window.location.search);
  const q = initial.get("q");
  const kValues = Array.from(kSelect.options).map(function (o) { return o.value; });
  if (kValues.indexOf(initial.get("k")) >= 0) kSelect.value = initial.get("k");
  if (q && q.trim()) {
    input.value = q;
    ask(q.trim(), kSelect.value);
  }
})();
