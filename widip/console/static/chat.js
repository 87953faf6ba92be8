// The WIBOT chat: sends messages through chat_backend.js and shows the agent's steps as they are
// polled (every 3 s, one request in flight per turn), with the SAFEGUARD banner on waiting_approval.
// Everything from the agent or a ticket is untrusted text: it is only ever set with textContent.
import { PERIOD_MS, notify } from "./console.js";
import * as backend from "./chat_backend.js";

const TERMINAL = new Set(["completed", "failed", "rejected"]);
const SECRET_KEYS = ["password", "payload", "secret", "token", "unicodepwd"];
const URL_RE = /https?:\/\/[^\s<>"')\]]+/g;
const root = document.getElementById("chat");
const turns = document.getElementById("turns");
const canApprove = root.dataset.canApprove === "true";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function masked(value) {
  if (Array.isArray(value)) return value.map(masked);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) =>
      [k, SECRET_KEYS.some((s) => k.toLowerCase().includes(s)) ? "***" : masked(v)]));
  }
  return value;
}

function short(value, limit = 300) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text && text.length > limit ? `${text.slice(0, limit)}…` : text || "";
}

function linkified(text) {
  // Citations and links from the documentation become real links (text stays text).
  const p = el("p", "bubble bot");
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    p.append(text.slice(last, match.index));
    const a = el("a", "citation", match[0]);
    a.href = match[0];
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    p.append(a);
    last = match.index + match[0].length;
  }
  p.append(text.slice(last));
  return p;
}

function decisionForm(requestId, action) {
  const approve = action === "approve";
  const form = el("form", `inline-decision ${action}`);
  form.dataset.api = `/safeguard/requests/${requestId}/${action}`;
  form.dataset.done = approve ? `Demande ${requestId} approuvée : l'action est lancée.` : `Demande ${requestId} rejetée.`;
  const id = `${action}-${requestId}-${Math.random().toString(36).slice(2, 7)}`;
  const label = el("label", "", approve ? "Commentaire (facultatif)" : "Motif du rejet");
  label.htmlFor = id;
  const input = el("input");
  input.id = id;
  input.name = approve ? "comment" : "reason";
  input.maxLength = 2000;
  if (!approve) input.required = true;
  const button = el("button", approve ? "approve" : "reject", approve ? "Approuver" : "Rejeter");
  button.type = "submit";
  form.append(label, input, button);
  return form;
}

function banner(event) {
  const box = el("div", "banner safeguard");
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", "Validation SAFEGUARD requise");
  box.dataset.requestId = event.request_id;
  box.append(el("strong", "", `Validation requise (${event.security_level || "L3"}) : ${event.tool}`),
             el("span", "muted", ` — demande n° ${event.request_id}`));
  if (canApprove) {
    const forms = el("div", "decide");
    forms.append(decisionForm(event.request_id, "approve"), decisionForm(event.request_id, "reject"));
    box.append(forms);
  } else {
    const who = root.dataset.approvers || "un approbateur N3 ou plus";
    box.append(el("p", "", `En attente de la décision d'un approbateur (N3+) : ${who}. ` +
                           "Vous pouvez continuer ailleurs, la réponse s'affichera ici."));
  }
  return box;
}

function closeBanners(article, text) {
  article.querySelectorAll(".banner.safeguard:not(.closed)").forEach((box) => {
    box.classList.add("closed");
    box.querySelectorAll("form").forEach((f) => f.remove());
    box.append(el("p", "muted", text));
  });
}

function render(article, event) {
  const steps = article.querySelector(".steps");
  const item = el("li", `step ${event.type}`);
  switch (event.type) {
    case "start": return;
    case "done": return;
    case "thinking":
      item.textContent = event.fallback ? event.message : `Réflexion… ${event.message && event.message !== "Analyse en cours…" ? event.message : ""}`;
      break;
    case "tool_call": {
      item.append(el("span", "", "Outil appelé : "), el("code", "", event.tool));
      const args = el("pre", "args", JSON.stringify(masked(event.params || {}), null, 2));
      item.append(args);
      break;
    }
    case "tool_result":
      item.classList.add(event.success ? "ok" : "failed");
      item.append(el("span", "", event.success ? "Résultat de " : "Échec de "), el("code", "", event.tool),
                  el("span", "", ` : ${short(event.success ? masked(event.result) : event.error)}`));
      break;
    case "tool_blocked":
      item.textContent = `Bloqué par SAFEGUARD : ${event.tool}${event.security_level ? ` (${event.security_level})` : ""} — ${event.error || ""}`;
      break;
    case "waiting_approval":
      item.append(banner(event));
      break;
    case "resumed":
      closeBanners(article, "Décision : approuvée.");
      item.textContent = `Approuvé : ${event.message || "reprise de l'agent"}`;
      break;
    case "rejected":
      closeBanners(article, "Décision : rejetée.");
      item.textContent = `Rejeté : ${(event.error || "l'action ne sera pas exécutée").replace(/^rejected by approver: /, "par l'approbateur — ")}`;
      break;
    case "response":
      steps.after(linkified(event.message || ""));
      return;
    case "error":
      item.textContent = `Erreur : ${event.error || "la session a échoué"}`;
      break;
    default:
      item.textContent = event.message || event.type;
  }
  steps.append(item);
}

function follow(article) {
  const url = article.dataset.events || backend.eventsUrl(article.dataset.session);
  const steps = article.querySelector(".steps");
  let after = 0;
  async function tick() {
    try {
      const page = await backend.events(url, after);
      steps.querySelectorAll(".step.loading, .step.retry").forEach((n) => n.remove());
      for (const event of page.events) render(article, event);
      after = page.next_after;
      article.dataset.status = page.status;
      if (TERMINAL.has(page.status) && page.events.length === 0) {
        article.classList.add("finished");
        showCitations(article);
        return;
      }
    } catch (err) {
      if (err.status === 401) { location.assign("/console/login"); return; }
      if (!steps.querySelector(".retry")) steps.append(el("li", "step retry", "Suivi interrompu ; nouvel essai dans 3 s…"));
    }
    setTimeout(tick, nextDelay(article));
  }
  tick();
}

function citation(c) {
  // A cited passage: a link when its source is a web address, plain text otherwise.
  const item = el("li", "citation");
  const label = [c.title, c.heading].filter(Boolean).join(" — ") || c.source || c.citation;
  if (/^https?:\/\//.test(c.source || "")) {
    const a = el("a", "", label);
    a.href = c.source;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    item.append(a);
  } else {
    item.append(el("span", "", label));
    if (c.source && c.source !== label) item.append(el("span", "small muted", ` (${c.source})`));
  }
  if (c.citation) item.append(el("code", "small", ` [${c.citation}]`));
  return item;
}

async function showCitations(article) {
  // The answer's sources, as the conversation recorded them (GET /conversations/{id}/messages).
  const id = root.dataset.conversation;
  if (!id || !backend.messages || article.querySelector(".citations")) return;
  try {
    const data = await backend.messages(id);
    const answer = (data?.messages || []).find((m) => m.role === "assistant" && m.session_id === article.dataset.session);
    if (!answer?.citations?.length || article.querySelector(".citations")) return;
    const box = el("nav", "citations");
    box.setAttribute("aria-label", "Sources citées");
    box.append(el("p", "small muted", "Sources :"));
    const list = el("ul", "plain");
    answer.citations.forEach((c) => list.append(citation(c)));
    box.append(list);
    article.append(box);
  } catch {
    // The sources are a bonus: the answer is already shown.
  }
}

function nextDelay(article) {
  return TERMINAL.has(article.dataset.status) ? 0 : PERIOD_MS;
}

function newTurn(content, sessionId, eventsUrl) {
  const article = el("article", "turn");
  article.dataset.session = sessionId;
  if (eventsUrl) article.dataset.events = eventsUrl;
  const bubble = el("p", "bubble user");
  bubble.append(el("span", "sr-only", "Vous : "), content);
  const steps = el("ol", "steps");
  steps.setAttribute("aria-label", "Étapes de WIBOT");
  steps.append(el("li", "step loading", "WIBOT réfléchit…"));
  article.append(bubble, steps);
  turns.append(article);
  return article;
}

const composer = document.getElementById("composer");
const message = document.getElementById("message");

message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    composer.requestSubmit();
  }
});

composer.addEventListener("submit", async (event) => {
  event.preventDefault();
  const content = message.value.trim();
  if (!content) return;
  const button = composer.querySelector("button");
  button.disabled = true;
  try {
    const current = backend.sameConversation ? root.dataset.conversation || null : null;
    const sent = await backend.send(current, content);
    document.getElementById("chat-empty")?.remove();
    document.getElementById("h-thread").textContent = "Conversation";
    message.value = "";
    if (sent.conversationId !== root.dataset.conversation) {
      root.dataset.conversation = sent.conversationId;
      history.pushState(null, "", `/console/chat/${encodeURIComponent(sent.conversationId)}`);
      const list = document.getElementById("w-conversations");
      list.dataset.poll = `/console/fragments/conversations?current=${encodeURIComponent(sent.conversationId)}`;
      list.refresh?.();
    }
    follow(newTurn(content, sent.sessionId, sent.eventsUrl));
  } catch (err) {
    notify(err.status === 0 ? "Serveur injoignable : message non envoyé." : err.message, "error");
  } finally {
    button.disabled = false;
    message.focus();
  }
});

turns.addEventListener("console:done", (event) => {
  const box = event.target.closest(".banner.safeguard");
  if (!box) return;
  box.querySelectorAll("form").forEach((f) => f.remove());
  box.append(el("p", "muted decision-sent", "Décision enregistrée ; la suite s'affiche ici."));
  message.focus();
});

turns.querySelectorAll("article.turn").forEach(follow);
