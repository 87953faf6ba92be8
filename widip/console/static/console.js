// Behaviour shared by every console page (plain ES module, no dependencies):
//  - widgets ([data-poll]) re-fetch their HTML every 3 s, never more than one request in flight each,
//    and never while the user is inside them (focus or unsent input), so keyboard use is not disturbed;
//  - forms with data-api call the JSON API with the session cookie and its CSRF header;
//  - results and errors are announced in French in the #toast live region.
export const PERIOD_MS = 3000;

export function csrf() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

const MESSAGES = {
  400: "Saisie refusée",
  401: "Session expirée : reconnectez-vous",
  403: "Action non autorisée pour votre compte",
  404: "Élément introuvable (peut-être déjà traité)",
  409: "Déjà décidé, expiré ou modifié entre-temps",
  429: "Trop de requêtes : patientez un instant",
  503: "Service momentanément indisponible : réessayez dans un instant",
};

export class ApiError extends Error {
  constructor(status, data) {
    const base = MESSAGES[status] || `Erreur inattendue (${status})`;
    const detail = data && data.description && [400, 403, 409].includes(status) ? ` — détail : ${data.description}` : "";
    super(base + detail);
    this.status = status;
    this.data = data;
  }
}

export async function api(method, url, body) {
  const init = { method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf(), Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch {
    throw new ApiError(0, null);
  }
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

export function notify(text, kind = "ok") {
  const toast = document.getElementById("toast");
  if (!toast) return;
  toast.textContent = text;
  toast.className = `toast show ${kind}`;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { toast.className = "toast"; }, 8000);
}

function loginAgain() {
  const back = encodeURIComponent(location.pathname + location.search);
  location.assign(`/console/login?next=${back}`);
}

function stateLine(el, text) {
  const line = el.parentElement && el.parentElement.querySelector(".widget-state");
  if (!line) return;
  line.hidden = !text;
  line.textContent = text || "";
}

function busyUser(el) {
  const active = document.activeElement;
  return el.dataset.dirty === "1" || (active && active !== document.body && el.contains(active));
}

export function poll(el) {
  let timer = null;
  let inflight = false;
  let again = false;
  async function tick(force = false) {
    timer = null;
    if (!force && (document.hidden || busyUser(el))) { schedule(); return; }
    inflight = true;
    el.setAttribute("aria-busy", "true");
    try {
      const resp = await fetch(el.dataset.poll, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (resp.status === 401) { loginAgain(); return; }
      const html = await resp.text();
      if (resp.status >= 500) throw new Error(String(resp.status));
      if ((force || !busyUser(el)) && html !== el.dataset.last) {
        const hadFocus = el.contains(document.activeElement);
        el.innerHTML = html;
        el.dataset.last = html;
        if (hadFocus || (force && document.activeElement === document.body)) el.focus();
      }
      stateLine(el, "");
    } catch {
      stateLine(el, "Actualisation impossible pour le moment ; nouvel essai dans 3 s…");
    } finally {
      inflight = false;
      el.removeAttribute("aria-busy");
      if (again) { again = false; tick(true); } else schedule();
    }
  }
  function schedule() { if (!timer) timer = setTimeout(tick, PERIOD_MS); }
  el.refresh = () => {
    if (inflight) { again = true; return; }
    clearTimeout(timer);
    timer = null;
    tick(true);
  };
  el.tabIndex = -1;
  el.addEventListener("input", () => { el.dataset.dirty = "1"; });
  schedule();
}

function formBody(form) {
  let url = form.dataset.api;
  const body = {};
  for (const field of form.elements) {
    if (!field.name) continue;
    let value = field.value;
    if (field.hasAttribute("data-path")) { url = url.replace(`{${field.name}}`, encodeURIComponent(value)); continue; }
    if (value === "") continue;
    if (field.dataset.kind === "datetime") value = new Date(value).toISOString();
    body[field.name] = value;
  }
  return { url, body };
}

async function submitApiForm(form) {
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
  const method = form.dataset.method || "POST";
  const { url, body } = formBody(form);
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  form.setAttribute("aria-busy", "true");
  try {
    const answer = await api(method, url, method === "DELETE" ? undefined : body);
    notify(form.dataset.done || "C'est fait.");
    const widget = form.closest("[data-poll]");
    const target = form.dataset.refresh ? document.getElementById(form.dataset.refresh) : widget;
    if (widget) delete widget.dataset.dirty;
    if (form.hasAttribute("data-reset")) form.reset();
    form.dispatchEvent(new CustomEvent("console:done", { bubbles: true, detail: answer }));
    if (target && target.refresh) target.refresh();
  } catch (err) {
    if (err.status === 401) { loginAgain(); return; }
    notify(err.status === 0 ? "Serveur injoignable : vérifiez la connexion et réessayez." : err.message, "error");
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    form.removeAttribute("aria-busy");
  }
}

function applyFilter(form) {
  const target = document.getElementById(form.dataset.filterFor);
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) if (value) params.append(key, value);
  const query = params.toString();
  target.dataset.poll = target.dataset.poll.split("?")[0] + (query ? `?${query}` : "");
  history.replaceState(null, "", location.pathname + (query ? `?${query}` : ""));
  target.refresh();
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.matches("form[data-filter-for]")) {
    event.preventDefault();
    applyFilter(form);
  } else if (form.matches("form[data-api]")) {
    event.preventDefault();
    submitApiForm(form);
  }
});

document.querySelectorAll("[data-poll]").forEach(poll);
