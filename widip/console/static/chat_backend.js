// The one module that knows which JSON API carries the chat (the seam for WIBOT conversations).
//
// Today each message starts one agent session: POST /agent/sessions {message} → {session_id, events},
// and a "conversation" is that session. With the conversations API, only this file changes:
//   send(null, text) → POST /conversations → {id}, then POST /conversations/{id}/messages {content}
//   send(id, text)   → POST /conversations/{id}/messages {content} → 202 {session_id, events_url}
// and `sameConversation` becomes true (follow-ups stay in the conversation instead of starting one).
import { api } from "./console.js";

export const sameConversation = false;

export async function send(conversationId, content) {
  const started = await api("POST", "/agent/sessions", { message: content });
  return { conversationId: started.session_id, sessionId: started.session_id, eventsUrl: started.events };
}

export function eventsUrl(sessionId) {
  return `/agent/sessions/${encodeURIComponent(sessionId)}/events`;
}

export async function events(url, after) {
  return api("GET", `${url}?after=${encodeURIComponent(after)}`);
}
