// Support: what htmx cannot do alone on the dispatch board (dragging an intervention onto a
// technician's slot) and in the technician view (drawing the customer's signature).
"use strict";

// ---- Technician's report: the customer's signature drawn on a <canvas> ----------------------
// Pointer events: the same code for a finger, a pen and a mouse. At the end of every stroke the
// drawing is exported as a PNG data URL into the form's hidden "signature" input, so the form
// posts it like any other field, with htmx or without. A form sent back with errors (422) keeps
// the signature in that input, and the pad draws it back. The server checks it again.
(function () {
  "use strict";

  var INK = "#1d2330";

  function setUp(pad) {
    var canvas = pad.querySelector("canvas");
    var input = pad.parentNode.querySelector("input.signature-value");
    if (!canvas || !input) return;
    pad.dataset.ready = "1";
    var context = canvas.getContext("2d");
    var pointer = null;   // the pointer drawing now: a second finger does not draw
    var last = null;

    function pen() {
      context.lineWidth = 2.5;
      context.lineCap = "round";
      context.lineJoin = "round";
      context.strokeStyle = INK;
      context.fillStyle = INK;
    }

    function drawBack() {
      if (!input.value) return;
      var image = new Image();
      image.onload = function () {
        var box = canvas.getBoundingClientRect();
        context.drawImage(image, 0, 0, box.width, box.height);
      };
      image.src = input.value;
    }

    // The bitmap follows the displayed size and the screen's pixel ratio, so strokes are sharp.
    pad.fit = function () {
      var box = canvas.getBoundingClientRect();
      if (!box.width || pad.fittedWidth === box.width) return;
      pad.fittedWidth = box.width;
      var ratio = window.devicePixelRatio || 1;
      canvas.width = Math.round(box.width * ratio);
      canvas.height = Math.round(box.height * ratio);
      context.setTransform(ratio, 0, 0, ratio, 0, 0);
      pen();
      drawBack();
    };

    function at(event) {
      var box = canvas.getBoundingClientRect();
      return { x: event.clientX - box.left, y: event.clientY - box.top };
    }

    canvas.addEventListener("pointerdown", function (event) {
      if (pointer !== null || event.button > 0) return;
      event.preventDefault();
      pointer = event.pointerId;
      canvas.setPointerCapture(pointer);
      last = at(event);
      context.beginPath();  // a tap leaves a dot
      context.arc(last.x, last.y, context.lineWidth / 2, 0, 2 * Math.PI);
      context.fill();
    });

    canvas.addEventListener("pointermove", function (event) {
      if (event.pointerId !== pointer) return;
      var moves = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
      if (!moves.length) moves = [event];
      context.beginPath();
      context.moveTo(last.x, last.y);
      moves.forEach(function (move) {
        last = at(move);
        context.lineTo(last.x, last.y);
      });
      context.stroke();
    });

    function strokeEnded(event) {
      if (event.pointerId !== pointer) return;
      pointer = null;
      input.value = canvas.toDataURL("image/png");
      pad.classList.add("signed");
    }
    canvas.addEventListener("pointerup", strokeEnded);
    canvas.addEventListener("pointercancel", strokeEnded);

    pad.querySelector(".signature-clear").addEventListener("click", function () {
      context.save();
      context.setTransform(1, 0, 0, 1, 0, 0);
      context.clearRect(0, 0, canvas.width, canvas.height);
      context.restore();
      input.value = "";
      pad.classList.remove("signed");
    });

    pad.fit();
  }

  function setUpAll() {
    document.querySelectorAll("[data-signature-pad]:not([data-ready])").forEach(setUp);
  }
  document.addEventListener("DOMContentLoaded", setUpAll);
  document.addEventListener("htmx:after:swap", setUpAll);
  // A phone turned sideways: refit (the signature so far is drawn back from the input).
  window.addEventListener("resize", function () {
    document.querySelectorAll("[data-signature-pad][data-ready]").forEach(function (pad) {
      if (pad.fit) pad.fit();
    });
  });
})();

// ---- Dispatch board: drag an intervention onto a technician's slot (SortableJS) --------------
// The board has one menu (#iv-menu, a <dialog>): the form that schedules a card (technician +
// start) and the one that puts it back in the tray. A card's "⋯" button opens it for that card
// (the keyboard's way); a drop on a slot fills it in from the slot's row (data-technician-id)
// and column (its hour head's data-start) and submits it; a drop on the tray submits the
// other. Its forms post to the card's own address (its title's href + "/schedule"). htmx swaps
// the board the answer carries and shows the toast; a refusal (409: the technician is taken;
// 422) leaves a toast and puts the card back. Without JavaScript a card's title leads to its
// page, which schedules it.
(function () {
  "use strict";

  var moving = null;  // the card dropped, until the answer comes

  function lists(board) {
    return board.querySelectorAll("#tray-cards:not([data-sortable]), .dispatch-grid tbody td:not([data-sortable])");
  }

  function initBoard() {
    var board = document.getElementById("dispatch-board");
    if (!board || !lists(board).length) return;
    window.crmWithSortable(board, function () {
      lists(board).forEach(function (list) {
        list.dataset.sortable = "on";
        window.Sortable.create(list, {
          group: "dispatch-board",
          sort: false,               // where a card sits in a slot is its time, not an order
          draggable: ".iv-card",
          forceFallback: true,       // pointer events, the same with a mouse, a pen or a finger
          fallbackOnBody: true,      // the dragged card is not clipped by the board's scroll
          fallbackTolerance: 4,      // a click on the title still opens the intervention
          delay: 150, delayOnTouchOnly: true,
          filter: "select, button, input, label, .is-moving",
          preventOnFilter: false,
          animation: 120,
          ghostClass: "card-ghost", chosenClass: "card-chosen", fallbackClass: "card-dragged",
          onStart: function () { board.classList.add("is-dragging"); },
          onEnd: dropped
        });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", initBoard);
  document.addEventListener("htmx:after:process", initBoard);

  function technicianOf(element) {  // the technician of the row a card or a slot is in
    var row = element && element.closest("tr[data-technician-id]");
    return row ? row.dataset.technicianId : "";
  }

  function startOf(slot) {  // a slot's start: its column's hour head
    var heads = slot.closest("table").tHead.rows[1].cells;
    return heads[slot.cellIndex - 1].dataset.start;
  }

  // The menu's forms, pointed at `card` and filled in: where it is now, or where it goes.
  function prepare(card, fromTechnician, technician, start) {
    var menu = document.getElementById("iv-menu");
    if (!menu) return null;
    var address = card.querySelector(".iv-title").getAttribute("href");
    var schedule = menu.querySelector("form.iv-schedule");
    var unschedule = menu.querySelector("form.iv-unschedule");
    [[schedule, "/schedule"], [unschedule, "/unschedule"]].forEach(function (pair) {
      pair[0].setAttribute("action", address + pair[1]);
      pair[0].setAttribute("hx-post", address + pair[1]);
    });
    schedule.elements.from_technician_id.value = fromTechnician;
    schedule.elements.technician_id.value = technician;
    schedule.elements.start.value = start;
    unschedule.hidden = !card.classList.contains("status-planned");
    menu.querySelector(".iv-menu-for").textContent = card.querySelector(".iv-title").textContent;
    return { menu: menu, schedule: schedule, unschedule: unschedule };
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#dispatch-board .iv-card .iv-menu");
    if (!button) return;
    var card = button.closest(".iv-card");
    var technician = technicianOf(card);
    var forms = prepare(card, technician, technician, card.dataset.start || "");
    if (!forms) return;
    moving = null;
    forms.menu.showModal();
    forms.schedule.elements.technician_id.focus();
  });

  function dropped(event) {
    var board = document.getElementById("dispatch-board");
    if (board) board.classList.remove("is-dragging");
    if (event.from === event.to) return;
    var card = event.item;
    card.boardOrigin = { list: event.from, index: event.oldIndex };
    var forms = prepare(card, technicianOf(event.from), "", "");
    var form = null;
    if (forms && event.to.dataset.tray) {
      form = forms.unschedule.hidden ? null : forms.unschedule;
    } else if (forms) {
      form = forms.schedule;
      form.elements.technician_id.value = technicianOf(event.to);
      form.elements.start.value = startOf(event.to);
    }
    if (!form) { putBack(card); return; }
    card.classList.add("is-moving");
    moving = card;
    form.requestSubmit();
  }

  // Back where it came from.
  function putBack(card) {
    if (!card) return;
    var origin = card.boardOrigin;
    if (origin && origin.list.isConnected) {
      origin.list.insertBefore(card, origin.list.children[origin.index] || null);
    }
    card.boardOrigin = null;
    card.classList.remove("is-moving");
  }

  function menuForm(element) {
    return element && element.matches && element.matches("#iv-menu form");
  }

  document.addEventListener("htmx:after:request", function (event) {
    var ctx = event.detail.ctx;
    if (!menuForm(ctx.sourceElement)) return;
    if (ctx.response.status >= 400) putBack(moving);
    moving = null;
  });

  document.addEventListener("htmx:error", function (event) {
    var ctx = event.detail.ctx;
    if (ctx && menuForm(ctx.sourceElement)) { putBack(moving); moving = null; }
  });
})();
