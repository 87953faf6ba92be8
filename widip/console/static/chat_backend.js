// The one module that knows which JSON API carries the chat: WIBOT conversations.
//
//   send(null, text) → POST /conversations → {id}, then POST /conversations/{id}/messages {content}
//   send(id, text)   → POST /conversations/{id}/messages {content} → 202 {session_id, events_url}
// Each message is one turn (one wibot agent session, polled through its events); the conversation
// carries the memory, so follow-ups stay in it (`sameConversation`).
import { api } from "./console.js";

export const sameConversation = true;

export async function send(conversationId, content) {
  let id = conversationId;
  if (!id) {
    const created = await api("POST", "/conversations", {});
    id = created.id;
  }
  const turn = await api("POST", `/conversations/${encodeURIComponent(id)}/messages`, { content });
  return { conversationId: id, sessionId: turn.session_id, eventsUrl: turn.events_url };
}

export function eventsUrl(sessionId) {
  return `/agent/sessions/${encodeURIComponent(sessionId)}/events`;
}

export async function events(url, after) {
  return api("GET", `${url}?after=${encodeURIComponent(after)}`);
}

// The conversation's messages (answers carry their `citations`); null when it is not ours to read
// (an approver following a desk link opens the technician's session, not the conversation).
export async function messages(conversationId) {
  try {
    return await api("GET", `/conversations/${encodeURIComponent(conversationId)}/messages`);
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}
