// crampqa article view: the whole article, verbatim, with one passage marked and in view.
// Text is set with textContent / text nodes only, never innerHTML.
"use strict";

(function () {
  const box = document.getElementById("article");
  const titleEl = document.getElementById("article-title");
  const meta = document.getElementById("article-meta");
  const params = new URLSearchParams(window.location.search);
  const source = params.get("source") || "";
  const question = params.get("q");
  if (question) {  // back to the answers to that question (no referrer is ever sent)
    const back = new URLSearchParams({ q: question });
    if (params.get("k")) back.set("k", params.get("k"));
    document.getElementById("back").href = "/?" + back.toString();
  }

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

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function fail(message) {
    const node = el("p", "error", message);
    node.setAttribute("role", "alert");
    box.replaceChildren(node);
    box.setAttribute("aria-busy", "false");
  }

  async function load() {
    if (!source) {
      fail("No source given; open an article from a passage's source link.");
      return;
    }
    let data = null;
    let response = null;
    try {
      response = await fetch("/api/article?source=" + encodeURIComponent(source), {
        headers: { Accept: "application/json" },
      });
      data = await response.json();
    } catch (error) {
      fail("The crampqa server could not be reached. Is `crampqa serve` still running?");
      return;
    }
    if (!response.ok) {
      fail((data && data.message) || "The article could not be loaded.");
      return;
    }
    const note = document.getElementById("disclaimer");
    if (data.disclaimer && note.textContent.replace(/\s+/g, " ").trim() !== data.disclaimer) {
      note.textContent = data.disclaimer;
    }
    document.title = "crampqa — " + data.title;
    titleEl.textContent = data.title;
    meta.replaceChildren(el("code", "source-id", data.source_id));
    if (data.url) {
      meta.appendChild(document.createTextNode(" · "));
      meta.appendChild(webLink(data.url));
    }
    // offsets count code points (as Python does), not UTF-16 units: slice code points
    const chars = Array.from(data.document);
    const part = function (a, b) { return chars.slice(a, b).join(""); };
    const whole = data.start === 0 && data.end === chars.length;
    const headings = (data.headings || []).filter(function (h) {
      return h[0] >= 0 && h[1] <= chars.length && h[1] > h[0];
    });
    /** document[a:b] with its section headings styled (verbatim text nodes only). */
    function withHeadings(target, a, b) {
      let at = a;
      for (const h of headings) {
        const s = Math.max(h[0], a), e = Math.min(h[1], b);
        if (e <= s || s < at) continue;
        if (s > at) target.appendChild(document.createTextNode(part(at, s)));
        target.appendChild(el("strong", "article-heading", part(s, e)));
        at = e;
      }
      if (b > at) target.appendChild(document.createTextNode(part(at, b)));
      return target;
    }
    const body = el("div", "article-body");
    withHeadings(body, 0, data.start);
    const passage = withHeadings(el(whole ? "span" : "mark", "article-passage"),
      data.start, data.end);
    passage.id = "passage";
    body.appendChild(passage);
    withHeadings(body, data.end, chars.length);
    box.replaceChildren(body);
    box.setAttribute("aria-busy", "false");
    if (!whole) {
      passage.setAttribute("tabindex", "-1");
      passage.scrollIntoView({ block: "center" });
      passage.focus({ preventScroll: true });
    }
  }

  load();
})();
