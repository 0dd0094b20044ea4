// crampqa article view: the whole article, verbatim, with one passage marked and in view.
// Text is set with textContent / text nodes only, never innerHTML.
"use strict";

(function () {
  const box = document.getElementById("article");
  const titleEl = document.getElementById("article-title");
  const meta = document.getElementById("article-meta");
  const source = new URLSearchParams(window.location.search).get("source") || "";

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

  if (document.referrer && new URL(document.referrer).origin === window.location.origin) {
    document.getElementById("back").addEventListener("click", function (event) {
      event.preventDefault();
      history.back();
    });
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
    const body = el("div", "article-body");
    body.appendChild(document.createTextNode(part(0, data.start)));
    const passage = el(whole ? "span" : "mark", "article-passage", part(data.start, data.end));
    passage.id = "passage";
    body.appendChild(passage);
    body.appendChild(document.createTextNode(part(data.end)));
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
