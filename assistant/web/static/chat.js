// The chat room's script (loaded by that page only; no inline script under the CSP).
// A question is posted with fetch and its answer read as server-sent events from the
// response body (EventSource cannot POST); tool runs, proposal cards, the turn budget and the
// answer are added to the conversation as they arrive. The answer is written into its bubble
// as the model produces it (answer.delta); that bubble is hidden from assistive technology
// while it grows, so that the conversation's live region announces the answer once, whole,
// when the final answer event replaces it. Decisions on a card go to the review
// room's own routes, then the card is reloaded as it stands. Without script, the forms post.
"use strict";

(function () {
  const form = document.getElementById("ask");
  const transcript = document.getElementById("transcript");
  if (!transcript) { return; }
  const csrf = document.querySelector('input[name="csrf"]');
  const token = csrf ? csrf.value : "";

  function item(kind, text) {
    const li = document.createElement("li");
    li.className = "msg " + kind;
    if (text !== undefined) { li.textContent = text; }
    transcript.appendChild(li);
    return li;
  }

  function spoken(kind, speaker, text) {
    const li = item(kind);
    const who = document.createElement("span");
    who.className = "speaker";
    who.textContent = speaker;
    const body = document.createElement("p");
    body.className = "text";
    body.textContent = text;
    li.append(who, body);
    return li;
  }

  function fragment(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    return template.content;
  }

  async function loadCard(actionId, slot) {
    const response = await fetch("/app/chat/cards/" + encodeURIComponent(actionId), {
      headers: { "Accept": "text/html" },
      credentials: "same-origin",
    });
    if (!response.ok) {
      slot.textContent = "A proposal was made (" + actionId + "); see the review room.";
      return;
    }
    slot.replaceChildren(fragment(await response.text()));
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      return body.detail || body.error || ("HTTP " + response.status);
    } catch (err) {
      return "HTTP " + response.status;
    }
  }

  // One server-sent event block: "event: NAME" and "data: JSON" lines.
  function parse(block) {
    let name = "message";
    const data = [];
    block.split("\n").forEach(function (line) {
      if (line.startsWith("event:")) { name = line.slice(6).trim(); }
      else if (line.startsWith("data:")) { data.push(line.slice(5).trimStart()); }
    });
    return { name: name, data: data.length ? JSON.parse(data.join("\n")) : {} };
  }

  function handle(event, state) {
    const data = event.data;
    if (event.name === "turn") {
      const field = form.querySelector('input[name="conversation_id"]');
      if (!field.value) {
        field.value = data.conversation_id;
        state.created = data.conversation_id;
        history.replaceState(null, "", "/app/chat/" + encodeURIComponent(data.conversation_id));
        const fresh = document.querySelector('a[href="/app/chat"][aria-current="page"]');
        if (fresh) { fresh.removeAttribute("aria-current"); }
        const heading = document.getElementById("talk-h");
        if (heading) { heading.textContent = state.question.slice(0, 120); }
      }
    } else if (event.name === "tool") {
      const li = item("tool");
      li.dataset.status = data.status;
      li.append("Tool ");
      const code = document.createElement("code");
      code.textContent = data.name;
      li.append(code, ": " + data.status + (data.detail ? " (" + data.detail + ")" : ""));
    } else if (event.name === "card") {
      const slot = item("proposal", "Proposal " + (data.title || data.kind) + ": loading its card");
      state.cards.push(loadCard(data.action_id, slot));
    } else if (event.name === "budget") {
      item("budget", "Turn budget reached: " + data.detail + ".").setAttribute("role", "note");
    } else if (event.name === "error") {
      item("failure", data.detail || data.error).setAttribute("role", "alert");
    } else if (event.name === "answer.delta") {
      if (!state.draft) {
        state.draft = spoken("assistant streaming", "Assistant", "");
        state.draft.setAttribute("aria-hidden", "true");
        document.getElementById("ask-status").textContent = "The assistant is answering.";
      }
      state.draft.querySelector(".text").append(data.text);
    } else if (event.name === "answer.reset") {
      // What streamed was said on the way to a tool run, not the answer.
      if (state.draft) { state.draft.remove(); state.draft = null; }
      document.getElementById("ask-status").textContent = "The assistant is working on it.";
    } else if (event.name === "answer") {
      // The final text is authoritative (the budget or an error may have replaced what
      // streamed); a new bubble in place of the draft is announced once.
      const answer = spoken("assistant", "Assistant", data.text);
      if (state.draft) { state.draft.replaceWith(answer); state.draft = null; }
    } else if (event.name === "done") {
      state.done = data;
    }
  }

  function listConversation(id, title) {
    const list = document.getElementById("conversation-list");
    const none = document.getElementById("no-conversations");
    if (none) { none.remove(); }
    if (!list) { return; }
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = "/app/chat/" + encodeURIComponent(id);
    link.textContent = title;
    link.setAttribute("aria-current", "page");
    li.appendChild(link);
    list.prepend(li);
  }

  async function ask(event) {
    event.preventDefault();
    const box = form.querySelector("textarea");
    const status = document.getElementById("ask-status");
    const button = form.querySelector('button[type="submit"]');
    const question = box.value.trim();
    if (!question) { box.focus(); return; }
    const body = new URLSearchParams(new FormData(form));
    spoken("user", "You", question);
    box.value = "";
    button.disabled = true;
    status.textContent = "The assistant is working on it.";
    const state = { cards: [], created: null, done: null, draft: null, question: question };
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "Accept": "text/event-stream", "X-CSRF-Token": token },
      });
      if (!response.ok || !response.body) {
        item("failure", "Not asked: " + await errorText(response)).setAttribute("role", "alert");
        box.value = question;
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) { break; }
        buffer += chunk.value.replace(/\r\n/g, "\n");
        let cut = buffer.indexOf("\n\n");
        while (cut >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          if (block.trim()) { handle(parse(block), state); }
          cut = buffer.indexOf("\n\n");
        }
      }
      await Promise.all(state.cards);
      if (state.created) { listConversation(state.created, question.slice(0, 120)); }
      status.textContent = state.done
        ? "Answered: " + state.done.model_calls + " model call(s), " + state.done.tool_calls + " tool run(s)."
        : "The answer stopped before its end; reload the conversation to see what was kept.";
    } catch (err) {
      item("failure", "The connection was lost: " + err.message).setAttribute("role", "alert");
      status.textContent = "";
    } finally {
      // A stream cut before its final answer leaves what came readable by everyone.
      if (state.draft) { state.draft.removeAttribute("aria-hidden"); }
      button.disabled = false;
      box.focus();
    }
  }

  // Approve, edit or reject on a card: the review room's routes decide (and refuse what
  // governance refuses); the card is then shown as it stands.
  async function decide(event) {
    const decision = event.target.closest("form[data-card-decision]");
    if (!decision) { return; }
    event.preventDefault();
    const card = decision.closest("article.chat-card");
    const outcome = card.querySelector(".card-outcome");
    decision.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    const response = await fetch(decision.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(decision)),
      credentials: "same-origin",
      redirect: "manual",  // the room answers 303 to its own page: not wanted here
      headers: { "X-CSRF-Token": token, "Accept": "application/json" },
    });
    if (response.type === "opaqueredirect" || response.ok) {
      const slot = card.parentElement;
      await loadCard(card.dataset.action, slot);
      const heading = slot.querySelector("h3");
      if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
      return;
    }
    decision.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
    if (outcome) { outcome.textContent = "Not done: " + await errorText(response); }
  }

  transcript.addEventListener("submit", decide);
  if (form) {
    form.addEventListener("submit", ask);
    form.querySelector("textarea").addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
  }
  transcript.lastElementChild && transcript.lastElementChild.scrollIntoView({ block: "end" });
})();
