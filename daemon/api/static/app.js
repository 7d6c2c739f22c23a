// The review page: recent faces, unknown groups, people, search by face, live events.
// Plain ES modules, no build step; every write is one of the API calls the CLI makes.

import { AuthError, call, query, setToken, token, withToken } from "./api.js";
import { clear, field, h, uid, when } from "./dom.js";

const main = document.getElementById("main");
const dialog = document.getElementById("dialog");
const toastBox = document.getElementById("toast");
const liveBox = document.getElementById("live");
const camerasBox = document.getElementById("cameras");
const logoutButton = document.getElementById("logout");

const state = {
  health: null,
  people: [],
  cameraStates: {},
  recentOffset: 0,
  pagedMore: false,
  stream: null,
  refreshTimer: null,
  ticker: [],
};

const VIEWS = { recent: showRecent, groups: showGroups, people: showPeople, search: showSearch };
const PAGE = 48;
// A person id as the gallery allows it (HTML patterns are compiled with the `v` flag, in
// which a "-" in a class must be escaped).
const ID_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.@\\-]{0,127}";

// ------------------------------------------------------------------ start, login, routing

window.addEventListener("hashchange", route);
logoutButton.addEventListener("click", () => {
  setToken("");
  stopStream();
  showLogin();
});
start();

async function start() {
  try {
    state.health = await call("/api/health");
  } catch (err) {
    if (err instanceof AuthError) return showLogin();
    return fail(err);
  }
  logoutButton.hidden = !state.health.auth;
  for (const c of state.health.cameras) state.cameraStates[c.name] = c.state;
  drawCameras();
  startStream();
  await loadPeople();
  route();
}

function showLogin(message) {
  document.body.classList.add("locked");
  const input = h("input", { type: "password", name: "token", autocomplete: "current-password",
                             required: true, spellcheck: "false" });
  const error = h("p", { class: "error", role: "alert", id: "login-error" }, message || "");
  input.setAttribute("aria-describedby", "login-error");
  const form = h("form", { class: "login", "aria-labelledby": "login-title" },
    h("h2", { id: "login-title" }, "Log in"),
    h("p", {}, "This facewatch API needs its access token (the file named by api.token_file)."),
    field("Access token", input), error,
    h("button", { type: "submit" }, "Log in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    setToken(input.value.trim());
    try {
      state.health = await call("/api/health");
    } catch (err) {
      setToken("");
      error.textContent = err instanceof AuthError ? "Wrong token: the API refused it." : err.message;
      input.focus();
      return;
    }
    document.body.classList.remove("locked");
    start();
  });
  clear(main).append(form);
  input.focus();
}

function route() {
  const [name, rest] = (location.hash.slice(1) || "recent").split("?");
  const view = VIEWS[name] || showRecent;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === "#" + (VIEWS[name] ? name : "recent")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  state.recentOffset = 0;
  run(() => view(new URLSearchParams(rest || "")));
}

// Runs a step of the page; a refused token brings the login back, any other error is shown.
async function run(step) {
  try {
    return await step();
  } catch (err) {
    if (err instanceof AuthError) {
      setToken("");
      stopStream();
      return showLogin("Wrong token: the API refused it.");
    }
    fail(err);
    return undefined;
  }
}

function fail(err) {
  toast(err.message || String(err), { error: true });
}

function toast(message, { error = false, undo = null } = {}) {
  clear(toastBox);
  toastBox.classList.toggle("error", error);
  toastBox.append(h("span", {}, message));
  if (undo) toastBox.append(h("button", { type: "button", onclick: () => run(undo) }, "Undo"));
  toastBox.append(h("button", { type: "button", class: "quiet", "aria-label": "Dismiss message",
                                onclick: () => { toastBox.hidden = true; } }, "×"));
  toastBox.hidden = false;
  clearTimeout(toastBox.timer);
  toastBox.timer = setTimeout(() => { toastBox.hidden = true; }, error ? 15000 : 10000);
}

// ------------------------------------------------------------------ live: cameras and events

function drawCameras() {
  clear(camerasBox);
  for (const [name, st] of Object.entries(state.cameraStates)) {
    camerasBox.append(h("li", { class: `camera ${st}`, dataset: { camera: name } },
      h("span", { class: "dot", "aria-hidden": "true" }), `${name}: ${st}`));
  }
}

function startStream() {
  stopStream();
  const source = new EventSource(withToken("/api/events/stream"));
  state.stream = source;
  source.onopen = () => { liveBox.textContent = "Live"; liveBox.className = "live on"; };
  source.onerror = () => { liveBox.textContent = "Reconnecting…"; liveBox.className = "live off"; };
  source.onmessage = (msg) => {
    let ev;
    try { ev = JSON.parse(msg.data); } catch (_) { return; }
    onEvent(ev);
  };
}

function stopStream() {
  if (state.stream) state.stream.close();
  state.stream = null;
}

function onEvent(ev) {
  if (ev.type === "camera.status") {
    state.cameraStates[ev.camera] = ev.state;
    drawCameras();
    return;
  }
  if (ev.type === "face.recognized" || ev.type === "face.unknown") {
    const who = ev.type === "face.recognized" ? (ev.name || ev.identity) : "unknown";
    state.ticker.unshift({ who, camera: ev.camera, ts: ev.ts, known: ev.type === "face.recognized",
                           identity: ev.identity || null });
    state.ticker.length = Math.min(state.ticker.length, 8);
    drawTicker();
  }
  if (ev.type === "track.ended") {
    // a track is stored in the library when it ends: refresh what shows the library
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(refreshView, 1500);
  }
}

function drawTicker() {
  const box = document.getElementById("ticker");
  if (!box) return;
  clear(box);
  for (const t of state.ticker) {
    box.append(h("li", { class: t.known ? "known" : "unknown", dataset: { identity: t.identity || "" } },
      h("strong", {}, t.who), ` at ${t.camera}, ${when(t.ts)}`));
  }
}

function refreshView() {
  const name = (location.hash.slice(1) || "recent").split("?")[0];
  if (dialog.open) return; // do not pull the page from under an open dialog
  // the first page of recent faces follows the library; older pages the user opened stay put
  if ((name === "recent" || !VIEWS[name]) && !state.pagedMore) run(() => loadRecent(false));
  if (name === "groups") run(() => showGroups());
}

// ------------------------------------------------------------------ people (shared)

async function loadPeople() {
  const doc = await call("/api/people");
  state.people = doc.people;
  state.editable = doc.editable;
  let list = document.getElementById("people-ids");
  if (!list) {
    list = h("datalist", { id: "people-ids" });
    document.body.append(list);
  }
  clear(list);
  for (const p of state.people) list.append(h("option", { value: p.id }, p.name));
}

function personName(id) {
  const p = state.people.find((x) => x.id === id);
  return p ? p.name : id;
}

// ------------------------------------------------------------------ faces

function faceCard(face, { actions = true, similarity = null } = {}) {
  const named = face.assigned_to || face.person_id;
  const who = named ? personName(named) : "unknown";
  const score = similarity !== null ? `${Math.round(similarity * 100)}% similar`
    : `score ${face.score.toFixed(2)}`;
  const label = `${who}, ${face.camera}, ${when(face.last_ts)}`;
  const open = h("button", { type: "button", class: "face", "aria-label": `Details: ${label}`,
                             onclick: () => run(() => showFace(face.id)) },
    h("img", { src: withToken(face.crop_url), alt: `Face of ${who}`, loading: "lazy",
               width: 112, height: 112 }));
  const card = h("li", { class: `card ${named ? "known" : "unknown"}`, dataset: { face: face.id, track: face.track_id } },
    open,
    h("p", { class: "who" }, who),
    h("p", { class: "meta" }, `${face.camera} · ${when(face.last_ts)} · ${score}`));
  if (actions) card.append(faceActions(face));
  return card;
}

function faceActions(face) {
  const named = face.assigned_to || face.person_id;
  const row = h("div", { class: "actions" });
  if (named && state.people.some((p) => p.id === named)) {
    row.append(h("button", { type: "button", class: "not",
                             onclick: () => run(() => markNot([face.id], named)) },
      `Not ${personName(named)}`));
  }
  row.append(h("button", { type: "button", onclick: () => run(() => askWho([face.id])) },
    named ? "This is someone else…" : "This is…"));
  return row;
}

async function markNot(faceIds, personId) {
  const result = await call("/api/faces/not", { method: "POST", json: { faces: faceIds, person: personId } });
  toast(`Marked as not ${personName(personId)}.`, { undo: () => undoEdits(result.edits) });
  await refreshAfterEdit();
}

async function undoEdits(edits) {
  for (const e of edits) await call(`/api/edits/${e.id}/undo`, { method: "POST" });
  toast(`Undone (${edits.length} edit${edits.length === 1 ? "" : "s"}).`);
  await refreshAfterEdit();
}

async function refreshAfterEdit() {
  await loadPeople();
  if (dialog.open) dialog.close();
  const name = (location.hash.slice(1) || "recent").split("?")[0];
  if (name === "people") await showPeople();
  else if (name === "groups") await showGroups();
  else if (name === "recent" || !VIEWS[name]) await loadRecent(false);
}

// "This is <person>": an existing person (pick from the list) or a new one (id and name).
function askWho(faceIds, { group = null } = {}) {
  const idInput = h("input", { name: "person", list: "people-ids", required: true, autocomplete: "off",
                               pattern: ID_PATTERN, spellcheck: "false" });
  const nameInput = h("input", { name: "name", autocomplete: "off", maxlength: 200 });
  const hint = h("p", { class: "hint", id: uid("hint") },
    "Pick someone from the list, or type a new id (letters, digits, _ . @ -) to add a person.");
  idInput.setAttribute("aria-describedby", hint.id);
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { method: "dialog" },
    h("h2", { id: "dialog-title" }, group ? "Name this group" : (faceIds.length > 1 ? "Who are they?" : "Who is this?")),
    field("Person id", idInput), hint,
    field("Name (for a new person, optional)", nameInput), error,
    h("div", { class: "actions" },
      h("button", { type: "submit" }, "Save"),
      h("button", { type: "button", class: "quiet", onclick: () => dialog.close() }, "Cancel")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const person = idInput.value.trim();
    const name = nameInput.value.trim() || null;
    try {
      const result = group !== null
        ? await call(`/api/clusters/${group}/assign`, { method: "POST", json: { person, name } })
        : await call("/api/faces/assign", { method: "POST", json: { faces: faceIds, person, name } });
      dialog.close();
      toast(`Named as ${name || personName(person)}${result.created_person ? " (new person)" : ""}.`,
            { undo: () => undoEdits(result.edits) });
      await refreshAfterEdit();
    } catch (err) {
      if (err instanceof AuthError) throw err;
      error.textContent = err.message;
    }
  });
  openDialog(form, idInput);
}

function openDialog(content, focus) {
  clear(dialog).append(content);
  if (!dialog.open) dialog.showModal();
  if (focus) focus.focus();
}

async function showFace(id) {
  const face = await call(`/api/faces/${id}`);
  const named = face.assigned_to || face.person_id;
  const who = named ? personName(named) : "unknown";
  const parts = [
    h("h2", { id: "dialog-title" }, `${who} at ${face.camera}`),
    h("p", { class: "meta" },
      `${when(face.first_ts)} – ${when(face.last_ts)} · ${face.views} view(s) · ` +
      (face.status === "known" ? `named ${personName(face.person_id)} (${face.score.toFixed(2)})`
        : `unknown; nearest ${face.nearest_id ? personName(face.nearest_id) : "nobody"} (${face.score.toFixed(2)})`)),
  ];
  const pictures = h("div", { class: "pictures" },
    h("img", { src: withToken(face.crop_url), alt: `Best view of ${who}`, width: 112, height: 112 }));
  if (face.snapshot_url) {
    pictures.append(h("img", { class: "snapshot", src: withToken(face.snapshot_url),
                               alt: `${who} in the camera's picture` }));
  }
  parts.push(pictures);
  if (face.segments.length) {
    parts.push(h("h3", {}, "Other views of this track"),
      h("ul", { class: "strip" }, face.segments.map((s) => h("li", {},
        h("img", { src: withToken(s.crop_url), alt: `${who}, ${when(s.last_ts)}`, width: 72, height: 72 })))));
  }
  const actions = faceActions(face);
  actions.append(
    h("button", { type: "button", onclick: () => { dialog.close(); location.hash = `#search?face=${face.id}`; } },
      "Seen before?"));
  if (face.group !== null && !named) {
    actions.append(h("button", { type: "button", onclick: () => run(async () => {
      const r = await call(`/api/faces/${face.id}/split`, { method: "POST" });
      toast(`Taken out of its group (now group ${r.group}).`);
      await refreshAfterEdit();
    }) }, "Not in this group"));
  }
  actions.append(h("button", { type: "button", class: "quiet", onclick: () => dialog.close() }, "Close"));
  parts.push(actions);
  const live = face.edits.filter((e) => !e.undone);
  if (live.length) {
    parts.push(h("h3", {}, "Gallery edits"), h("ul", { class: "edits" }, live.map((e) => h("li", {},
      `${e.kind === "assign" ? "named" : "not"} ${personName(e.person_id)} (${e.at}) `,
      h("button", { type: "button", onclick: () => run(() => undoEdits([e])) }, "Undo")))));
  }
  openDialog(h("div", { class: "face-detail" }, parts), actions.querySelector("button"));
}

// ------------------------------------------------------------------ recent faces

async function showRecent(params) {
  const cameras = Object.keys(state.cameraStates);
  const camera = h("select", { name: "camera" }, h("option", { value: "" }, "All cameras"),
    cameras.map((c) => h("option", { value: c }, c)));
  const person = h("select", { name: "person" }, h("option", { value: "" }, "Anyone"),
    state.people.map((p) => h("option", { value: p.id }, p.name)));
  const status = h("select", { name: "status" }, h("option", { value: "" }, "Named and unknown"),
    h("option", { value: "known" }, "Named only"), h("option", { value: "unknown" }, "Unknown only"));
  const since = h("select", { name: "since" }, h("option", { value: "" }, "Any time"),
    h("option", { value: "1h" }, "Last hour"), h("option", { value: "24h" }, "Last 24 hours"),
    h("option", { value: "7d" }, "Last 7 days"));
  for (const [el, key] of [[camera, "camera"], [person, "person"], [status, "status"], [since, "since"]]) {
    if (params && params.get(key)) el.value = params.get(key);
  }
  const filters = h("form", { class: "filters", "aria-label": "Filter recent faces" },
    field("Camera", camera), field("Person", person), field("Show", status), field("Seen", since));
  filters.addEventListener("change", () => {
    state.recentOffset = 0;
    run(() => loadRecent(false));
  });
  filters.addEventListener("submit", (ev) => ev.preventDefault());
  clear(main).append(
    h("h2", {}, "Recent faces"),
    h("section", { class: "ticker", "aria-label": "Live" },
      h("h3", {}, "Just now"), h("ul", { id: "ticker", "aria-live": "polite" })),
    filters,
    h("p", { id: "recent-count", class: "meta", "aria-live": "polite" }),
    h("ul", { id: "recent", class: "grid", "aria-label": "Recent faces" }),
    h("button", { type: "button", id: "more", class: "quiet", hidden: true,
                  onclick: () => run(() => loadRecent(true)) }, "Show older faces"));
  drawTicker();
  await loadRecent(false);
}

async function loadRecent(more) {
  const grid = document.getElementById("recent");
  if (!grid) return;
  const form = document.querySelector("form.filters");
  const f = new FormData(form);
  if (!more) state.recentOffset = 0;
  state.pagedMore = more;
  const unknown = f.get("status") === "unknown" ? "true" : f.get("status") === "known" ? "false" : "";
  const page = await call("/api/faces" + query({ camera: f.get("camera"), person: f.get("person"),
    unknown, since: f.get("since"), limit: PAGE, offset: state.recentOffset }));
  if (!more) clear(grid);
  for (const face of page.faces) grid.append(faceCard(face));
  state.recentOffset += page.faces.length;
  document.getElementById("recent-count").textContent =
    page.total ? `${Math.min(state.recentOffset, page.total)} of ${page.total} faces, newest first`
      : "No faces yet: they appear here as the cameras see people.";
  document.getElementById("more").hidden = state.recentOffset >= page.total;
}

// ------------------------------------------------------------------ unknown groups

async function showGroups() {
  const doc = await call("/api/clusters?faces=8");
  const list = h("ul", { class: "groups", "aria-label": "Unknown groups" });
  for (const g of doc.groups) list.append(groupCard(g));
  clear(main).append(
    h("h2", {}, "Unknown groups"),
    h("p", { class: "hint" }, "Faces nobody was named for, grouped by likeness: name a group once and the " +
      "daemon recognises that person from then on."),
    doc.groups.length ? list : h("p", {}, "No unknown groups waiting."),
    h("button", { type: "button", class: "quiet", onclick: () => run(async () => {
      const r = await call("/api/clusters/regroup", { method: "POST" });
      toast(`Regrouped ${r.faces} faces into ${r.groups} groups.`);
      await showGroups();
    }) }, "Group again from scratch"));
}

function groupCard(g) {
  const titleId = uid("group");
  const cams = g.cameras.join(", ");
  const seen = g.first_ts === g.last_ts ? when(g.last_ts) : `${when(g.first_ts)} – ${when(g.last_ts)}`;
  return h("li", { class: "group", dataset: { group: g.id }, "aria-labelledby": titleId },
    h("h3", { id: titleId }, `Group ${g.id}: ${g.size} face${g.size === 1 ? "" : "s"}`),
    h("p", { class: "meta" }, `Seen ${seen} on ${cams}`),
    h("ul", { class: "strip" }, g.faces.map((f) => h("li", {},
      h("button", { type: "button", class: "face", "aria-label": `Face ${f.id}, ${when(f.last_ts)}: details`,
                    onclick: () => run(() => showFace(f.id)) },
        h("img", { src: withToken(f.crop_url), alt: `Face in group ${g.id}`, width: 72, height: 72, loading: "lazy" }))))),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "name-group", onclick: () => askWho([], { group: g.id }) }, "Name…"),
      h("button", { type: "button", onclick: () => run(() => showGroupFaces(g.id)) }, "All faces / split"),
      h("button", { type: "button", class: "quiet", onclick: () => run(async () => {
        await call(`/api/clusters/${g.id}/dismiss`, { method: "POST", json: { dismissed: true } });
        toast(`Group ${g.id} dismissed.`, { undo: async () => {
          await call(`/api/clusters/${g.id}/dismiss`, { method: "POST", json: { dismissed: false } });
          await showGroups();
        } });
        await showGroups();
      }) }, "Dismiss")));
}

async function showGroupFaces(id) {
  const g = await call(`/api/clusters/${id}`);
  const list = h("ul", { class: "grid" }, g.faces.map((f) => h("li", { class: "card", dataset: { face: f.id } },
    h("img", { src: withToken(f.crop_url), alt: `Face ${f.id}`, width: 112, height: 112, loading: "lazy" }),
    h("p", { class: "meta" }, `${f.camera} · ${when(f.last_ts)}`),
    h("button", { type: "button", onclick: () => run(async () => {
      await call(`/api/faces/${f.id}/split`, { method: "POST" });
      toast(`Face ${f.id} taken out of group ${id}.`);
      await showGroupFaces(id);
    }) }, "Split off"))));
  const close = h("button", { type: "button", class: "quiet", onclick: () => { dialog.close(); run(() => showGroups()); } }, "Close");
  openDialog(h("div", {}, h("h2", { id: "dialog-title" }, `Group ${id}: ${g.size} faces`),
    h("p", { class: "hint" }, "Split off the faces that are not this person."), list, close), close);
}

// ------------------------------------------------------------------ people

async function showPeople() {
  await loadPeople();
  const box = h("ul", { class: "people", "aria-label": "People" });
  for (const p of state.people) box.append(personCard(p));
  clear(main).append(h("h2", {}, "People"));
  if (!state.editable) {
    main.append(h("p", { class: "hint" }, "This gallery is a folder of people: edit it by adding or removing folders."));
  } else {
    main.append(newPersonForm());
  }
  main.append(state.people.length ? box : h("p", {}, "Nobody enrolled yet: name an unknown group, or add a person with photos."));
}

function newPersonForm() {
  const id = h("input", { name: "id", required: true, pattern: ID_PATTERN,
                          autocomplete: "off", spellcheck: "false" });
  const name = h("input", { name: "name", autocomplete: "off", maxlength: 200 });
  const photos = h("input", { type: "file", name: "photos", accept: "image/*", multiple: true, required: true });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "new-person", "aria-labelledby": "new-person-title" },
    h("h3", { id: "new-person-title" }, "Add a person"),
    field("Id (letters, digits, _ . @ -)", id), field("Name", name), field("Photos (one face each)", photos),
    error, h("button", { type: "submit" }, "Add person"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    run(async () => {
      error.textContent = "";
      const data = new FormData(form);
      if (!name.value.trim()) data.delete("name");
      try {
        await call("/api/people", { method: "POST", form: data });
      } catch (err) {
        if (err instanceof AuthError) throw err;
        error.textContent = err.message;
        return;
      }
      toast(`${name.value.trim() || id.value.trim()} added.`);
      await showPeople();
    });
  });
  return form;
}

function personCard(p) {
  const titleId = uid("person");
  const error = h("p", { class: "error", role: "alert" });
  const upload = h("input", { type: "file", accept: "image/*", multiple: true, name: "photos" });
  const addForm = h("form", { class: "inline" }, field(`Add photos of ${p.name}`, upload),
    h("button", { type: "submit" }, "Upload"));
  addForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    run(async () => {
      try {
        await call(`/api/people/${encodeURIComponent(p.id)}/photos`, { method: "POST", form: new FormData(addForm) });
      } catch (err) {
        if (err instanceof AuthError) throw err;
        error.textContent = err.message;
        return;
      }
      toast(`Photos added to ${p.name}.`);
      await showPeople();
    });
  });
  const rename = h("input", { name: "name", value: p.name, maxlength: 200, autocomplete: "off" });
  const renameForm = h("form", { class: "inline" }, field("Name", rename), h("button", { type: "submit" }, "Rename"));
  renameForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    run(async () => {
      try {
        await call(`/api/people/${encodeURIComponent(p.id)}`, { method: "PATCH", json: { name: rename.value } });
      } catch (err) {
        if (err instanceof AuthError) throw err;
        error.textContent = err.message;
        return;
      }
      toast(`Renamed to ${rename.value}.`);
      await showPeople();
    });
  });
  const photos = h("ul", { class: "strip photos" }, p.photos.map((ph) => h("li", { dataset: { photo: ph.id } },
    h("img", { src: withToken(ph.url + "?size=160"), alt: `Photo of ${p.name} (${ph.source})`, width: 96, height: 96,
               loading: "lazy" }),
    h("span", { class: `badge ${ph.source}` }, ph.source === "camera" ? "from camera" : ph.source),
    ph.removable && p.photos.length > 1 ? h("button", { type: "button", class: "quiet",
      "aria-label": `Remove this photo of ${p.name}`, onclick: () => run(async () => {
        await call(`/api/people/${encodeURIComponent(p.id)}/photos/${ph.id}`, { method: "DELETE" });
        toast("Photo removed.");
        await showPeople();
      }) }, "Remove") : null)));
  const remove = h("button", { type: "button", class: "danger", onclick: () => confirmDelete(p) }, `Delete ${p.name}`);
  return h("li", { class: "person", dataset: { person: p.id }, "aria-labelledby": titleId },
    h("h3", { id: titleId }, p.name, h("span", { class: "meta" }, ` (${p.id})`)),
    h("p", { class: "meta" }, `${p.photos.length} photo${p.photos.length === 1 ? "" : "s"}` +
      (p.not_entries ? ` · ${p.not_entries} "not ${p.name}" example${p.not_entries === 1 ? "" : "s"}` : "")),
    photos,
    state.editable ? h("div", { class: "person-edit" }, addForm, renameForm, remove, error) : null,
    h("a", { href: `#recent?person=${encodeURIComponent(p.id)}` }, `Where was ${p.name} seen?`));
}

function confirmDelete(p) {
  const yes = h("button", { type: "button", class: "danger", onclick: () => run(async () => {
    await call(`/api/people/${encodeURIComponent(p.id)}`, { method: "DELETE" });
    dialog.close();
    toast(`${p.name} deleted.`);
    await showPeople();
  }) }, "Delete");
  const no = h("button", { type: "button", class: "quiet", onclick: () => dialog.close() }, "Keep");
  openDialog(h("div", {}, h("h2", { id: "dialog-title" }, `Delete ${p.name}?`),
    h("p", {}, "They leave the gallery with the photos facewatch copied for them; photos of your own stay on disk. " +
      "Their faces in the library become unknown again."),
    h("div", { class: "actions" }, yes, no)), no);
}

// ------------------------------------------------------------------ search by face

async function showSearch(params) {
  const face = params && params.get("face");
  const photo = h("input", { type: "file", name: "image", accept: "image/*" });
  const camera = h("select", { name: "camera" }, h("option", { value: "" }, "All cameras"),
    Object.keys(state.cameraStates).map((c) => h("option", { value: c }, c)));
  const since = h("select", { name: "since" }, h("option", { value: "" }, "Any time"),
    h("option", { value: "24h" }, "Last 24 hours"), h("option", { value: "7d" }, "Last 7 days"),
    h("option", { value: "30d" }, "Last 30 days"));
  const order = h("select", { name: "order" }, h("option", { value: "similarity" }, "Most similar first"),
    h("option", { value: "newest" }, "Newest first"));
  const results = h("ul", { class: "grid", id: "results", "aria-label": "Search results" });
  const status = h("p", { class: "meta", role: "status" });
  const drop = h("div", { class: "drop" }, field("Photo of the face (or drop one here)", photo));
  const form = h("form", { class: "search", "aria-label": "Search by face" });
  if (face) {
    form.append(h("p", {}, `Looking for face ${face}. `, h("a", { href: "#search" }, "Search with a photo instead")),
      h("input", { type: "hidden", name: "face", value: face }));
  } else {
    form.append(drop);
  }
  form.append(field("Camera", camera), field("Seen", since), field("Order", order),
    h("button", { type: "submit" }, "Search"));
  for (const type of ["dragover", "dragenter"]) drop.addEventListener(type, (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    if (ev.dataTransfer.files.length) {
      photo.files = ev.dataTransfer.files;
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    run(async () => {
      const data = new FormData(form);
      if (!photo.files.length) data.delete("image");
      for (const k of ["camera", "since"]) if (!data.get(k)) data.delete(k);
      status.textContent = "Searching…";
      let doc;
      try {
        doc = await call("/api/search", { method: "POST", form: data });
      } catch (err) {
        status.textContent = "";
        throw err;
      }
      clear(results);
      for (const hit of doc.results) results.append(faceCard(hit, { similarity: hit.similarity }));
      status.textContent = doc.results.length
        ? `${doc.results.length} sighting${doc.results.length === 1 ? "" : "s"} at least ${Math.round(doc.min_similarity * 100)}% similar`
        : "Not seen (nothing similar enough).";
    });
  });
  clear(main).append(h("h2", {}, "Search by face"),
    h("p", { class: "hint" }, "When and where was this face seen? Known and unknown faces alike."),
    form, status, results);
  if (face) form.requestSubmit();
}
