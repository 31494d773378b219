// mg console: the only script. No dependencies, no inline code (the CSP forbids it).
// 1. JSON fields (textarea[data-json]) are checked as you type; a form with bad JSON does not
//    submit (the node checks again anyway).
// 2. The sink page's table (table[data-feed]) follows new events: it long-polls the console's
//    feed and adds rows as text (never as markup).
"use strict";

function checkJson(area) {
  var message = "";
  try {
    JSON.parse(area.value);
  } catch (error) {
    message = "Not valid JSON: " + error.message;
  }
  area.setCustomValidity(message);
  area.classList.toggle("invalid", message !== "");
  var note = area.parentElement.querySelector(".json-error");
  if (note) note.textContent = message;
  return message === "";
}

function watchJsonFields() {
  document.querySelectorAll("textarea[data-json]").forEach(function (area) {
    area.addEventListener("input", function () { checkJson(area); });
    area.form.addEventListener("submit", function (event) {
      if (!checkJson(area)) event.preventDefault();
    });
  });
}

function cell(row, text, className) {
  var td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function addEvent(body, e) {
  var row = document.createElement("tr");
  row.className = "sink-event fresh";
  cell(row, String(e.position), "num");
  var where = cell(row, e.ns + " / ");
  var link = document.createElement("a");
  link.href = e.machine_url;
  link.textContent = e.machine_id;
  where.appendChild(link);
  cell(row, String(e.event_id), "num");
  cell(row, e.created_at);
  var data = cell(row, "");
  var pre = document.createElement("pre");
  pre.className = "json";
  pre.textContent = e.data;
  data.appendChild(pre);
  var hash = cell(row, e.hash.slice(0, 12) + "\u2026", "hash");
  hash.title = e.hash;
  body.insertBefore(row, body.firstChild);
  while (body.rows.length > 200) body.deleteRow(body.rows.length - 1);
}

function followSink(table) {
  var body = table.tBodies[0];
  var state = document.getElementById("live-state");
  var after = Number(table.dataset.after || "0");
  function poll() {
    fetch(table.dataset.feed + "?after=" + after, { credentials: "same-origin" })
      .then(function (answer) {
        if (!answer.ok) throw new Error("HTTP " + answer.status);
        return answer.json();
      })
      .then(function (found) {
        var empty = document.getElementById("sink-empty");
        if (empty && found.events.length) empty.remove();
        found.events.forEach(function (e) {
          addEvent(body, e);
          after = Math.max(after, e.position);
        });
        table.dataset.after = String(after);
        if (state) { state.textContent = "live"; state.classList.remove("stale"); }
        setTimeout(poll, 100);
      })
      .catch(function () {
        if (state) { state.textContent = "reconnecting"; state.classList.add("stale"); }
        setTimeout(poll, 3000);
      });
  }
  poll();
}

document.addEventListener("DOMContentLoaded", function () {
  watchJsonFields();
  document.querySelectorAll("table[data-feed]").forEach(followSink);
});
