// The API as the page uses it: the same calls as the CLI and any other client.
// The token (when the API needs one) lives in this tab's sessionStorage only.

const KEY = "facewatch.token";

export class AuthError extends Error {}

export function token() {
  return sessionStorage.getItem(KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

// A URL the browser fetches by itself (an image, the event stream) cannot carry a header.
export function withToken(url) {
  const t = token();
  if (!t) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(t);
}

// JSON in and out; `form` (a FormData) for uploads.  Errors carry the API's one line.
export async function call(path, { method = "GET", json, form } = {}) {
  const headers = {};
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  const answer = await fetch(path, { method, headers, body });
  if (answer.status === 401) throw new AuthError("missing or wrong token");
  if (answer.status === 204) return null;
  let doc = null;
  try {
    doc = await answer.json();
  } catch (_) {
    doc = null;
  }
  if (!answer.ok) {
    const message = doc && doc.error ? doc.error : `${answer.status} ${answer.statusText}`;
    throw new Error(message);
  }
  return doc;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}
