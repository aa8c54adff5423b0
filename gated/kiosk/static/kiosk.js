// gated kiosk: live board over server-sent events, check-digit hints, reason chips, zoom, print.
"use strict";

// ISO 6346 check digit: letters skip multiples of 11, weight 2^i, sum mod 11 mod 10
function iso6346CheckDigit(first10) {
  const values = {};
  let v = 10;
  for (const letter of "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
    if (v % 11 === 0) v += 1;
    values[letter] = v;
    v += 1;
  }
  let sum = 0;
  for (let i = 0; i < 10; i += 1) {
    const ch = first10[i];
    const value = /[0-9]/.test(ch) ? Number(ch) : values[ch];
    sum += value * Math.pow(2, i);
  }
  return (sum % 11) % 10;
}

function checkNumberInput(input) {
  const hint = input.form.querySelector("[data-iso6346-hint]");
  const number = input.value.replace(/[\s\-./]/g, "").toUpperCase();
  input.classList.remove("valid", "invalid");
  if (!hint) return;
  hint.className = "hint";
  if (number.length === 0) { hint.textContent = ""; return; }
  if (!/^[A-Z]{3}[UJZ][0-9]{6}[0-9]?$/.test(number)) {
    hint.textContent = number.length < 11 ? "4 letters, 6 digits, check digit" : "not a container number";
    if (number.length >= 11) { hint.classList.add("bad"); input.classList.add("invalid"); }
    return;
  }
  const expected = iso6346CheckDigit(number.slice(0, 10));
  if (number.length === 10) {
    hint.textContent = "check digit should be " + expected;
  } else if (Number(number[10]) === expected) {
    hint.textContent = "check digit " + expected + " is right";
    hint.classList.add("ok"); input.classList.add("valid");
  } else {
    hint.textContent = "check digit should be " + expected + ", not " + number[10];
    hint.classList.add("bad"); input.classList.add("invalid");
  }
}

function fillLane(node, lane) {
  node.className = "lane state-" + lane.state;
  node.querySelector(".lane-id").textContent = "Lane " + lane.lane;
  node.querySelector(".lane-dir").textContent = lane.direction;
  node.querySelector(".state").textContent = lane.state;
  node.querySelector(".lane-truck").textContent = lane.truck || "no truck";
  node.querySelector(".lane-containers").textContent = lane.containers.join(" · ");
  const link = node.querySelector(".lane-tx");
  if (lane.transaction_id) {
    const waiting = lane.state === "trouble" || lane.state === "inspection";
    link.href = "/transactions/" + lane.transaction_id;
    link.textContent = (waiting ? "Resolve #" : "Open #") + lane.transaction_id;
  } else {
    link.removeAttribute("href");
    link.textContent = "";
  }
  const devices = node.querySelector(".devices");
  devices.replaceChildren();
  const up = [];
  for (const d of lane.devices) {
    if (d.up) { up.push(d.device); continue; }
    const li = document.createElement("li");
    li.className = "down";
    li.title = d.detail;
    li.textContent = d.detail ? d.device + ": " + d.detail : d.device;
    devices.appendChild(li);
  }
  if (up.length > 0) {
    const li = document.createElement("li");
    li.className = "up";
    li.title = up.join(", ");
    li.textContent = (up.length === lane.devices.length ? "all " : "") + up.length +
      (up.length === 1 ? " device OK" : " devices OK");
    devices.appendChild(li);
  }
}

function renderBoard(board, data) {
  const lanes = board.querySelector("[data-lanes]");
  const laneTemplate = document.getElementById("lane-template");
  lanes.replaceChildren();
  for (const lane of data.lanes) {
    const node = laneTemplate.content.firstElementChild.cloneNode(true);
    fillLane(node, lane);
    lanes.appendChild(node);
  }
  const queue = board.querySelector("[data-queue]");
  const queueTemplate = document.getElementById("queue-template");
  queue.replaceChildren();
  for (const item of data.queue) {
    const li = queueTemplate.content.firstElementChild.cloneNode(true);
    const a = li.querySelector("a");
    a.href = "/transactions/" + item.id;
    a.className = "queue-item state-" + item.state;
    const laneCell = li.querySelector(".q-lane");
    laneCell.textContent = "Lane " + item.lane;
    const small = document.createElement("small");
    small.textContent = item.state;
    laneCell.appendChild(small);
    li.querySelector(".q-containers").textContent = item.containers.join(" · ");
    li.querySelector(".q-reasons").textContent = item.reasons.join("; ");
    li.querySelector(".q-wait").textContent = item.waiting;
    queue.appendChild(li);
  }
  if (data.queue.length === 0) {
    const li = document.createElement("li");
    li.className = "queue-empty";
    li.textContent = "Nothing waiting. All lanes flowing.";
    queue.appendChild(li);
  }
  board.querySelector("[data-queue-count]").textContent = data.queue.length;
  const moves = board.querySelector("[data-waiting-moves]");
  moves.textContent = data.waiting_moves + (data.waiting_moves === 1 ? " move" : " moves") +
    " waiting for TOS acknowledgement";
  moves.classList.toggle("warn", data.waiting_moves > 0);
}

function startBoard(board) {
  const live = board.querySelector("[data-live]");
  const source = new EventSource(board.dataset.boardStream);
  source.addEventListener("board", (event) => {
    renderBoard(board, JSON.parse(event.data));
    live.classList.remove("stale");
    live.textContent = "live";
  });
  source.addEventListener("logout", () => { source.close(); window.location = "/login"; });
  source.onerror = () => { live.classList.add("stale"); live.textContent = "reconnecting"; };
}

document.addEventListener("DOMContentLoaded", () => {
  const board = document.querySelector("[data-board-stream]");
  if (board) startBoard(board);

  for (const input of document.querySelectorAll("[data-iso6346]")) {
    input.addEventListener("input", () => checkNumberInput(input));
    checkNumberInput(input);
  }
  for (const chip of document.querySelectorAll("[data-fill-reason]")) {
    chip.addEventListener("click", () => {
      const field = chip.closest("form").querySelector("[data-reason]");
      field.value = chip.dataset.fillReason;
      field.focus();
    });
  }
  for (const shot of document.querySelectorAll("[data-zoom]")) {
    shot.addEventListener("click", () => shot.classList.toggle("zoomed"));
  }
  // one tap, one action: a second tap while the first is on its way would only be refused
  for (const form of document.querySelectorAll("form[method=post]")) {
    form.addEventListener("submit", () => {
      setTimeout(() => {
        for (const button of form.querySelectorAll("button")) button.disabled = true;
      }, 0);
    });
  }
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;  // back to a page kept in memory: its buttons work again
    for (const button of document.querySelectorAll("form button")) button.disabled = false;
  });
  for (const button of document.querySelectorAll("[data-print]")) {
    button.addEventListener("click", () => window.print());
  }
});
