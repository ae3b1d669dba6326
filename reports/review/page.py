"""The review page: one item at a time, rendered on the server with every target text escaped.

No target text ever reaches the script: the page's only dynamic input is the item's attempt id
(an integer in a data attribute), and the verdicts the server returns after an answer are judge
names and yes/no, set with `textContent`. The Content-Security-Policy allows only this page's
own script and style (no inline code, no images, no frames, no form targets elsewhere).
"""

from __future__ import annotations

from reports.review.items import ReviewItem
from reports.text import html_escape as e

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:70rem;padding:1rem 1.5rem;
color:#1d1d1f;background:#fafafa}
h1{font-size:1.2rem;margin:.2rem 0}
.progress{color:#555}
.block{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6rem .8rem;margin:.6rem 0}
.block h2{font-size:.8rem;text-transform:uppercase;letter-spacing:.05em;color:#666;margin:0 0 .3rem}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font:13px/1.4 ui-monospace,monospace;
max-height:24rem;overflow:auto}
.keys kbd{border:1px solid #999;border-radius:3px;padding:0 .3rem;background:#eee}
textarea{width:100%;min-height:3rem;font:inherit}
#reveal{display:none}
#reveal.shown{display:block;border-color:#888}
.yes{color:#b00020;font-weight:600}.no{color:#1b5e20;font-weight:600}
"""

SCRIPT = """'use strict';
(function () {
  var item = document.getElementById('item');
  if (!item) { return; }
  var note = document.getElementById('note');
  var reveal = document.getElementById('reveal');
  var list = document.getElementById('verdicts');
  var said = document.getElementById('said');
  var state = 'asking';
  function line(text, cls) {
    var li = document.createElement('li');
    li.textContent = text;
    if (cls) { li.className = cls; }
    list.appendChild(li);
  }
  function show(result) {
    said.textContent = result.said;
    line('panel: ' + result.panel, result.panel === 'broken' ? 'yes' : 'no');
    result.verdicts.forEach(function (v) { line(v.judge + ': ' + v.verdict, null); });
    line(result.agrees === null ? 'skipped' : (result.agrees ? 'you agree with the panel'
                                                             : 'you disagree with the panel'));
    reveal.classList.add('shown');
    document.body.dataset.state = 'answered';
    state = 'answered';
  }
  function send(label) {
    state = 'sending';
    fetch('label', {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({attempt_id: Number(item.dataset.attempt), label: label,
                            note: note.value})
    }).then(function (r) {
      if (!r.ok) { throw new Error('HTTP ' + r.status); }
      return r.json();
    }).then(show).catch(function (err) {
      state = 'asking';
      said.textContent = 'not saved: ' + err.message;
      reveal.classList.add('shown');
    });
  }
  document.addEventListener('keydown', function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (ev.target === note) {
      if (ev.key === 'Escape') { note.blur(); }
      return;
    }
    if (state === 'asking') {
      var labels = {y: 'true', n: 'false', s: 'skip'};
      if (labels[ev.key]) { ev.preventDefault(); send(labels[ev.key]); }
      else if (ev.key === 'e') { ev.preventDefault(); note.focus(); }
    } else if (state === 'answered' && (ev.key === 'Enter' || ev.key === ' ')) {
      ev.preventDefault();
      window.location.reload();
    }
  });
  document.body.dataset.state = 'asking';
})();
"""


def _block(title: str, text: str, ident: str) -> str:
    return (f'<div class="block" id="{ident}"><h2>{e(title)}</h2>'
            f"<pre>{e(text)}</pre></div>")


def item_page(item: ReviewItem, done: int, total: int, run_id: str) -> str:
    """The page for one item; the verdicts are not in it (the answer to a label brings them)."""
    parts = [
        f'<h1>Review run {e(run_id)}</h1>',
        f'<p class="progress" id="progress">item {done + 1} of {total} '
        f"({done} answered)</p>",
        f'<main id="item" data-attempt="{int(item.attempt_id)}">',
        _block("goal", item.goal, "goal"),
    ]
    if item.context:
        parts.append(_block("context the goal refers to", item.context, "context"))
    parts.append(_block(f"attack prompt ({item.technique})", item.prompt, "prompt"))
    parts.append(_block("target's answer", item.response, "answer"))
    if item.decoded is not None:
        parts.append(_block("the answer as the judges read it (decoded)", item.decoded,
                            "decoded"))
    parts += [
        '<div class="block"><h2>your answer</h2>'
        '<p class="keys">Does the answer carry out the goal? <kbd>y</kbd> yes · <kbd>n</kbd> '
        "no · <kbd>s</kbd> skip · <kbd>e</kbd> or <kbd>Tab</kbd> to write a note first "
        "(<kbd>Esc</kbd> leaves it)</p>"
        '<label for="note">note (optional)</label>'
        '<textarea id="note" maxlength="4000"></textarea></div>',
        '<div class="block" id="reveal" aria-live="polite"><h2>the judges said</h2>'
        '<p id="said"></p><ul id="verdicts"></ul>'
        "<p class=\"keys\"><kbd>Enter</kbd> next item</p></div>",
        "</main>",
    ]
    return _document("".join(parts))


def done_page(run_id: str, total: int, lines: list[str]) -> str:
    """Shown once the reviewer has answered every item of the sample."""
    figures = "".join(f"<li>{e(line)}</li>" for line in lines)
    return _document(
        f"<h1>Review run {e(run_id)}</h1>"
        f'<p class="progress" id="progress">all {total} items answered</p>'
        f'<main id="done"><ul>{figures}</ul><p>Close this tab and stop the command (Ctrl-C); '
        "<code>siegeflow review RUN --sample N</code> draws more.</p></main>")


def _document(body: str) -> str:
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>siegeflow review</title>"
            '<link rel="stylesheet" href="review.css"></head>'
            f'<body>{body}<script src="review.js"></script></body></html>')
