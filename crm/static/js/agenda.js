// The shared agenda: what htmx cannot do alone (creating by dragging over empty
// slots, moving and resizing events by drag). Loaded on every page, idle elsewhere.
"use strict";

// ---- Agenda views and events ------------------------------------------------------------
// The server places every item (row, span and lane classes of agenda.css); this script only
// follows the pointer and asks the server, which decides and answers with the agenda again:
// - a click or a drag over empty slots opens the event form in the dialog, times filled in;
// - a drag of an event moves it (time grid: another time or day; month and team: another
//   day, same time); a drag of its bottom edge changes its end. Refused: it goes back.
// Times sent are the viewer's wall-clock times ("2026-12-07T09:30"); the server converts.
(function () {
  var SLOT_MINUTES = 15;
  var ROWS = 96;
  var DRAG_THRESHOLD = 5;
  // htmx.ajax() names the source's target in HX-Target, not the one given: say it, so the
  // server answers with the fragment the dialog wants rather than the whole page.
  var DIALOG_TARGET = { "HX-Target": "div#event-dialog-body" };
  var suppressClick = false;  // the click that ends a drag must not open the event
  var keptScroll = null;      // the time grid's scroll position across a re-render

  function dialog() { return document.getElementById("event-dialog"); }
  function dialogBody() { return document.getElementById("event-dialog-body"); }

  // "2026-12-07" plus minutes from its midnight, as a naive local ISO time.
  function localIso(day, minutes) {
    var moment = new Date(day + "T00:00:00Z");
    moment.setUTCMinutes(moment.getUTCMinutes() + minutes);
    return moment.toISOString().slice(0, 16);
  }

  function minutesOf(iso) {  // "2026-12-07T09:30" -> 570
    return parseInt(iso.slice(11, 13), 10) * 60 + parseInt(iso.slice(14, 16), 10);
  }

  function openInDialog(url) {
    var grid = document.getElementById("agenda-grid");
    if (!grid || !window.htmx) return false;
    window.htmx.ajax("GET", url, {
      source: grid, target: "#event-dialog-body", swap: "innerHTML", headers: DIALOG_TARGET
    });
    return true;
  }

  function openForm(params) {
    var grid = document.getElementById("agenda-grid");
    if (grid) openInDialog(grid.dataset.newUrl + "?" + new URLSearchParams(params).toString());
  }

  // An event of the grids is a plain link to its page (a new tab, no JavaScript); a click
  // opens it in the dialog. Said here once rather than by hx-get and hx-target on each of
  // the hundreds of events a team's week shows; likewise its move address, from its href.
  function moveUrl(el) { return el.getAttribute("href") + "/move"; }

  // ---- the dialog: opens when a form or an event lands in it, closes once saved ----
  document.addEventListener("htmx:after:swap", function () {
    var box = dialog();
    var body = dialogBody();
    if (!box || !body) return;
    if (body.children.length && !box.open) box.showModal();
    if (box.open) {
      var first = body.querySelector("[autofocus]");
      if (first && !box.contains(document.activeElement)) { first.focus(); first.select && first.select(); }
    }
  });

  document.addEventListener("agenda:saved", function () {
    var box = dialog();
    if (box && box.open) box.close();
  });

  document.addEventListener("close", function (event) {
    if (event.target.id !== "event-dialog") return;
    dialogBody().innerHTML = "";
    document.querySelectorAll(".slot-selection").forEach(function (el) { el.remove(); });
  }, true);

  document.addEventListener("click", function (event) {
    var closer = event.target.closest && event.target.closest("[data-close-dialog]");
    if (!closer) return;
    var box = closer.closest("dialog");
    if (box) { box.close(); return; }
    window.location.href = (document.querySelector(".breadcrumb a") || {}).href || "/agenda";
  });

  // Pickers: Enter picks from the list, it does not send the form; a contact added clears the search.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.matches && event.target.matches("input[data-picker]")) event.preventDefault();
  });
  document.addEventListener("htmx:after:swap", function (event) {
    var target = event.detail && event.detail.ctx && event.detail.ctx.target;
    if (target && target.id === "chosen-contacts") {
      var search = document.getElementById("contact-search");
      if (search) { search.value = ""; search.focus(); }
    }
  });

  // ---- the time grid opens on the morning, and keeps its place when redrawn ----
  function slotHeight(column) { return column.getBoundingClientRect().height / ROWS; }

  function placeScroll() {
    var scroller = document.querySelector(".tg-scroll");
    if (!scroller || scroller.dataset.placed) return;
    scroller.dataset.placed = "1";
    if (keptScroll !== null) { scroller.scrollTop = keptScroll; keptScroll = null; return; }
    var column = scroller.querySelector(".tg-col");
    if (column) scroller.scrollTop = (parseInt(scroller.dataset.firstRow, 10) - 1) * slotHeight(column);
  }
  document.addEventListener("DOMContentLoaded", placeScroll);
  document.addEventListener("htmx:after:settle", placeScroll);
  document.addEventListener("htmx:before:swap", function () {
    var scroller = document.querySelector(".tg-scroll");
    keptScroll = scroller ? scroller.scrollTop : null;
  });
  document.addEventListener("htmx:after:swap", function () {
    placeScroll();
    keptScroll = null;
  });

  function setRows(el, row, span) {
    el.className = el.className.replace(/\bat-\d+\b/, "at-" + row).replace(/\blen-\d+\b/, "len-" + span)
      .replace(/\blane-\d+-of-\d+\b/, "lane-1-of-1");
  }

  function rowAt(column, clientY) {  // 0-based slot under the pointer
    var rect = column.getBoundingClientRect();
    return Math.max(0, Math.min(ROWS - 1, Math.floor((clientY - rect.top) / slotHeight(column))));
  }

  function columnAt(clientX) {
    var found = null;
    document.querySelectorAll(".tg-col").forEach(function (column) {
      var rect = column.getBoundingClientRect();
      if (clientX >= rect.left && clientX < rect.right) found = column;
    });
    return found;
  }

  // ---- gestures ----
  var gesture = null;

  // Events and chips are links: the browser's own drag of a link would take the pointer away.
  document.addEventListener("dragstart", function (event) {
    if (event.target.closest && event.target.closest("#agenda-grid")) event.preventDefault();
  });

  document.addEventListener("pointerdown", function (event) {
    if (event.button !== 0 || !event.target.closest) return;
    var grid = event.target.closest("#agenda-grid");
    if (!grid) return;
    var block = event.target.closest(".ev.editable[data-key]");
    var chip = event.target.closest(".chip.editable[data-key]");
    var column = event.target.closest(".tg-col");
    if (block) {
      var resize = event.target.classList.contains("ev-resize");
      gesture = { kind: resize ? "resize" : "move", el: block, x: event.clientX, y: event.clientY, started: false,
        home: block.parentNode, next: block.nextSibling, className: block.className,
        row: parseInt(block.dataset.row, 10), span: parseInt(block.dataset.span, 10) };
    } else if (chip) {
      var cell = chip.closest("[data-date]");
      gesture = { kind: "day", el: chip, x: event.clientX, y: event.clientY, started: false, fromDate: cell && cell.dataset.date };
    } else if (column && event.target === column && grid.dataset.create) {
      var row = rowAt(column, event.clientY);
      var selection = document.createElement("div");
      selection.className = "slot-selection at-" + (row + 1) + " len-1";
      document.querySelectorAll(".slot-selection").forEach(function (el) { el.remove(); });
      column.appendChild(selection);
      gesture = { kind: "select", column: column, first: row, last: row, el: selection, y: event.clientY, started: false };
      column.setPointerCapture(event.pointerId);
      event.preventDefault();
    }
  });

  document.addEventListener("pointermove", function (event) {
    if (!gesture) return;
    if (!gesture.started) {
      if (Math.abs(event.clientX - (gesture.x || event.clientX)) < DRAG_THRESHOLD &&
          Math.abs(event.clientY - gesture.y) < DRAG_THRESHOLD) return;
      gesture.started = true;
      if (gesture.kind !== "select") gesture.el.classList.add("dragging");
      if (gesture.kind === "day") startFloating(gesture, event);
    }
    event.preventDefault();
    if (gesture.kind === "select") {
      gesture.last = rowAt(gesture.column, event.clientY);
      var top = Math.min(gesture.first, gesture.last);
      setRows(gesture.el, top + 1, Math.abs(gesture.last - gesture.first) + 1);
    } else if (gesture.kind === "move") {
      var column = columnAt(event.clientX) || gesture.home;
      var delta = Math.round((event.clientY - gesture.y) / slotHeight(column));
      gesture.newRow = Math.max(1, Math.min(ROWS + 1 - gesture.span, gesture.row + delta));
      gesture.column = column;
      if (gesture.el.parentNode !== column) column.appendChild(gesture.el);
      setRows(gesture.el, gesture.newRow, gesture.span);
    } else if (gesture.kind === "resize") {
      var change = Math.round((event.clientY - gesture.y) / slotHeight(gesture.home));
      gesture.newSpan = Math.max(1, Math.min(ROWS + 1 - gesture.row, gesture.span + change));
      setRows(gesture.el, gesture.row, gesture.newSpan);
    } else if (gesture.kind === "day") {
      moveFloating(gesture, event);
    }
  });

  document.addEventListener("pointerup", function (event) {
    var done = gesture;
    gesture = null;
    if (!done) return;
    if (done.kind === "select") { finishSelection(done); return; }
    if (!done.started) return;  // a plain click: the link opens the event
    suppressClick = true;
    setTimeout(function () { suppressClick = false; }, 0);
    if (done.kind === "day") { finishDayMove(done, event); return; }
    done.el.classList.remove("dragging");
    var start, end;
    var minutes = parseInt(done.el.dataset.minutes, 10);
    if (done.kind === "move") {
      if (done.column === done.home && done.newRow === done.row) { putBack(done); return; }
      var startMinutes = (done.newRow - 1) * SLOT_MINUTES;
      if (done.newRow === done.row) startMinutes = minutesOf(done.el.dataset.start);  // same time, other day
      start = localIso(done.column.dataset.date, startMinutes);
      end = localIso(done.column.dataset.date, startMinutes + minutes);
    } else {
      if (done.newSpan === done.span) { putBack(done); return; }
      start = done.el.dataset.start;
      var day = start.slice(0, 10);
      end = localIso(day, (done.row - 1 + done.newSpan) * SLOT_MINUTES);
    }
    send(done, { start: start, end: end });
  });

  document.addEventListener("pointercancel", function () {
    if (gesture && gesture.kind === "select") gesture.el.remove();
    if (gesture && gesture.started && gesture.kind !== "select" && gesture.kind !== "day") putBack(gesture);
    if (gesture && gesture.floating) gesture.floating.remove();
    gesture = null;
  });

  document.addEventListener("click", function (event) {
    if (suppressClick) { event.preventDefault(); event.stopImmediatePropagation(); suppressClick = false; return; }
    var grid = event.target.closest && event.target.closest("#agenda-grid");
    if (!grid) return;
    var link = event.target.closest("a[data-key]");
    if (link) {
      if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
      if (openInDialog(link.getAttribute("href"))) { event.preventDefault(); event.stopPropagation(); }
      return;
    }
    // A click on an empty cell of the month, the team or the all-day row plans on that day.
    var cell = event.target;
    if (cell.matches(".mg-cell") && grid.dataset.create) {
      openForm({ day: cell.dataset.date, organizer: grid.dataset.person });
    } else if (cell.matches(".tg-allday-cell") && grid.dataset.create) {
      openForm({ day: cell.dataset.date, all_day: "1", organizer: grid.dataset.person });
    } else if (cell.matches(".tm-cell[data-create='1']")) {
      openForm({ day: cell.dataset.date, organizer: cell.dataset.person });
    }
  }, true);

  function finishSelection(done) {
    var day = done.column.dataset.date;
    var first = Math.min(done.first, done.last);
    var last = Math.max(done.first, done.last);
    var startMinutes, endMinutes;
    if (first === last) {  // one click: an hour from the half hour clicked
      startMinutes = (first - (first % 2)) * SLOT_MINUTES;
      endMinutes = Math.min(startMinutes + 60, 24 * 60);
      setRows(done.el, startMinutes / SLOT_MINUTES + 1, (endMinutes - startMinutes) / SLOT_MINUTES);
    } else {
      startMinutes = first * SLOT_MINUTES;
      endMinutes = (last + 1) * SLOT_MINUTES;
    }
    var grid = document.getElementById("agenda-grid");
    openForm({ start: localIso(day, startMinutes), end: localIso(day, endMinutes), organizer: grid.dataset.person });
  }

  function putBack(done) {
    done.el.className = done.className;
    done.el.classList.remove("dragging", "saving");
    if (done.home && done.home.isConnected) done.home.insertBefore(done.el, done.next && done.next.parentNode === done.home ? done.next : null);
  }

  // The server answers with the agenda redrawn (and a toast); a refusal (403, 422) puts it back.
  function send(done, values) {
    done.el.classList.add("saving");
    pending.set(done.el, done);
    window.htmx.ajax("POST", moveUrl(done.el), {
      source: done.el, target: "#event-dialog-body", swap: "innerHTML", values: values, headers: DIALOG_TARGET
    });
  }
  var pending = new Map();

  document.addEventListener("htmx:after:request", function (event) {
    var ctx = event.detail && event.detail.ctx;
    if (!ctx || !pending.has(ctx.sourceElement)) return;
    var done = pending.get(ctx.sourceElement);
    pending.delete(ctx.sourceElement);
    if (!ctx.response || ctx.response.status >= 400) {
      if (done.kind === "day") done.el.classList.remove("saving"); else putBack(done);
    }
  });
  document.addEventListener("htmx:error", function (event) {
    var ctx = event.detail && event.detail.ctx;
    if (!ctx || !pending.has(ctx.sourceElement)) return;
    var done = pending.get(ctx.sourceElement);
    pending.delete(ctx.sourceElement);
    if (done.kind === "day") done.el.classList.remove("saving"); else putBack(done);
  });

  // Month, team and all-day chips: a copy follows the pointer; the day under it is the target.
  function startFloating(done, event) {
    var rect = done.el.getBoundingClientRect();
    var copy = done.el.cloneNode(true);
    copy.classList.add("dragging");
    copy.style.width = rect.width + "px";
    document.body.appendChild(copy);
    done.floating = copy;
    done.offsetX = event.clientX - rect.left;
    done.offsetY = event.clientY - rect.top;
    done.el.classList.add("saving");
  }

  function dayCellAt(x, y) {
    var under = document.elementFromPoint(x, y);
    var cell = under && under.closest && under.closest("#agenda-grid [data-date]");
    return cell;
  }

  function moveFloating(done, event) {
    done.floating.style.left = (event.clientX - done.offsetX) + "px";
    done.floating.style.top = (event.clientY - done.offsetY) + "px";
    var cell = dayCellAt(event.clientX, event.clientY);
    if (done.over && done.over !== cell) done.over.classList.remove("drop-target");
    if (cell) cell.classList.add("drop-target");
    done.over = cell;
  }

  function finishDayMove(done, event) {
    if (done.floating) done.floating.remove();
    if (done.over) done.over.classList.remove("drop-target");
    done.el.classList.remove("dragging");
    var cell = dayCellAt(event.clientX, event.clientY);
    if (!cell || cell.dataset.date === done.fromDate) { done.el.classList.remove("saving"); return; }
    send(done, { day: cell.dataset.date });
  }
})();
