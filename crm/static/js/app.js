// Our own JavaScript: only what HTML and htmx cannot do. No inline scripts anywhere,
// so the Content-Security-Policy can forbid them.
(function () {
  "use strict";

  // Toasts: the server announces success with `HX-Trigger: {"crm:toast": {...}}`.
  function showToast(message, level) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var toast = document.createElement("div");
    toast.className = "toast toast-" + (level || "success");
    toast.setAttribute("role", level === "error" ? "alert" : "status");
    toast.textContent = message;
    box.appendChild(toast);
    setTimeout(function () { toast.remove(); }, 5000);
  }
  document.addEventListener("crm:toast", function (event) {
    showToast(event.detail.message, event.detail.level);
  });

  // Toasts rendered by the server (flash messages, htmx errors) fade away too.
  function expireToasts(root) {
    (root || document).querySelectorAll(".toast:not([data-expiring])").forEach(function (toast) {
      toast.dataset.expiring = "1";
      setTimeout(function () { toast.remove(); }, toast.classList.contains("toast-error") ? 8000 : 5000);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { expireToasts(); });
  document.addEventListener("htmx:after:swap", function () { expireToasts(); });

  function typingInField(event) {
    var el = event.target;
    return el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
  }

  // Keyboard: "/" goes to the search box, "n" to the first field of a quick-add form,
  // Escape cancels an inline edit or closes the search suggestions.
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape") {
      var editor = event.target.closest && event.target.closest("form.editing");
      if (editor) {
        var cancel = editor.querySelector(".cancel");
        if (cancel) { event.preventDefault(); cancel.click(); }
        return;
      }
      var suggestions = document.getElementById("search-suggestions");
      if (suggestions) suggestions.innerHTML = "";
      return;
    }
    if (typingInField(event)) return;
    if (event.key === "/") {
      var search = document.getElementById("global-search");
      if (search) { event.preventDefault(); search.focus(); search.select(); }
    } else if (event.key === "n") {
      var first = document.querySelector(".quick-add input:not([type=hidden])");
      if (first) { event.preventDefault(); first.focus(); }
    }
  });

  // A click outside the global search closes its suggestions.
  document.addEventListener("click", function (event) {
    var suggestions = document.getElementById("search-suggestions");
    if (suggestions && !event.target.closest(".global-search")) suggestions.innerHTML = "";
  });

  // Invitation links: one click selects the whole link for copying.
  document.addEventListener("focusin", function (event) {
    if (event.target.classList && event.target.classList.contains("copy-link")) event.target.select();
  });
})();

// ---- SortableJS, for the boards (deals, dispatch) ------------------------------------------
// A board page loads Sortable in <head>; a boosted navigation to it swaps only <body>, so the
// first board shown that way loads it from the address its container names (data-sortable-src).
(function () {
  "use strict";
  var loading = null;
  window.crmWithSortable = function (container, then) {
    if (window.Sortable) { then(); return; }
    if (!loading) {
      loading = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = container.dataset.sortableSrc;
        script.onload = resolve;
        script.onerror = reject;
        document.head.appendChild(script);
      });
    }
    loading.then(then);
  };
})();

// ---- Deal board: drag and drop between stages (SortableJS) ------------------------------
// A card's "⋯" links to the deal's move page (the way without JavaScript). Here it opens in
// the card a copy of the page's one move form (<template id="card-move-template">: stage
// <select> + Move), which posts to /deals/<id>/move: the keyboard's way. A drop builds that
// same form, hidden, fills in the stage and submits it, so htmx sends it with the CSRF header
// <body> passes on, swaps the card and the two column heads the answer carries, and shows the
// toast. A drop into a lost stage first asks for the reason in a <dialog>; cancelling it, or
// any refusal from the server (409: someone else changed the deal), puts the card back where
// it came from. A column shows its first cards; the next ones load as one scrolls down it.
(function () {
  "use strict";

  var MENU = ".deal-card > div > a:last-child";  // a card's "⋯"
  var waitingForReason = null;  // the form of the card whose lost reason the dialog asks for
  var refocus = null;           // the id of a card moved from the keyboard, to focus again

  function initBoard() {
    var container = document.getElementById("deal-board");
    if (!container || !container.querySelector(".column-cards:not([data-sortable])")) return;
    window.crmWithSortable(container, function () {
      container.querySelectorAll(".column-cards:not([data-sortable])").forEach(function (list) {
        list.dataset.sortable = "on";
        window.Sortable.create(list, {
          group: "deal-board-" + list.closest(".board").dataset.pipelineId,
          draggable: ".deal-card",   // not the "and N more" that ends a column
          sort: false,               // the order inside a column is the server's (expected close)
          forceFallback: true,       // pointer events, the same with a mouse, a pen or a finger
          fallbackOnBody: true,      // the card under the pointer is not clipped by the board's scroll
          fallbackTolerance: 4,      // a click on the title still opens the deal
          delay: 150, delayOnTouchOnly: true,  // a finger can still scroll the board
          filter: MENU + ", select, button, input, textarea, label, .is-moving",
          preventOnFilter: false,
          animation: 120,
          ghostClass: "card-ghost", chosenClass: "card-chosen", fallbackClass: "card-dragged",
          onEnd: dropped
        });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", initBoard);
  document.addEventListener("htmx:after:process", initBoard);

  // The next cards of a column may hold one that was dragged into it meanwhile: keep the one
  // already shown.
  document.addEventListener("htmx:after:swap", function () {
    var board = document.querySelector("#deal-board .board");
    if (!board) return;
    var seen = {};
    board.querySelectorAll(".deal-card").forEach(function (card) {
      if (seen[card.id]) card.remove();
      seen[card.id] = true;
    });
  });

  // The filters go into the address bar: leave out the empty ones, so it reads /deals?q=acme.
  document.addEventListener("htmx:config:request", function (event) {
    var ctx = event.detail.ctx;
    if (!ctx.sourceElement || ctx.sourceElement.id !== "deal-filters" || !ctx.request.body) return;
    Array.from(ctx.request.body.entries()).forEach(function (entry) {
      if (entry[1] === "") ctx.request.body.delete(entry[0]);
    });
  });

  function cardOf(form) { return form.closest(".deal-card"); }

  function stageOf(card) { return card.closest(".column-cards").dataset.stageId; }

  // The card's move form: the one it shows, or a copy of the page's, for this card. The stages
  // to choose from are the board's columns.
  function moveForm(card) {
    var form = card.querySelector("form.card-move");
    if (form) return form;
    form = document.getElementById("card-move-template").content.firstElementChild.cloneNode(true);
    var address = card.querySelector(MENU).getAttribute("href");
    form.setAttribute("action", address);
    form.setAttribute("hx-post", address);
    form.setAttribute("hx-target", "#" + card.id);
    form.setAttribute("hx-swap", "outerHTML");
    form.elements.version.value = card.dataset.version;
    card.closest(".board").querySelectorAll(".board-column").forEach(function (column) {
      var option = document.createElement("option");
      option.value = column.querySelector(".column-cards").dataset.stageId;
      option.textContent = column.querySelector("h2").textContent;
      form.elements.stage_id.appendChild(option);
    });
    form.elements.stage_id.value = stageOf(card);
    card.appendChild(form);
    htmx.process(form);
    return form;
  }

  function closeMenu(card) {
    var form = card.querySelector("form.card-move");
    if (form) form.remove();
    card.querySelector(MENU).setAttribute("aria-expanded", "false");
  }

  // "⋯" opens the card's move form (one card at a time), and closes it again. Caught on the
  // way down, before the link's own (boosted) navigation to the move page hears of it.
  document.addEventListener("click", function (event) {
    var menu = event.target.closest && event.target.closest(MENU);
    if (!menu || !menu.closest("#deal-board")) return;
    event.preventDefault();
    event.stopPropagation();
    var card = menu.closest(".deal-card");
    var form = card.querySelector("form.card-move");
    if (form && !form.hidden) { closeMenu(card); return; }
    document.querySelectorAll("#deal-board form.card-move").forEach(function (open) {
      if (!open.hidden) closeMenu(cardOf(open));
    });
    moveForm(card).hidden = false;
    menu.setAttribute("aria-expanded", "true");
  }, true);

  // Escape in an open move form closes it, back on its "⋯".
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !event.target.closest) return;
    var form = event.target.closest("#deal-board form.card-move");
    if (!form) return;
    var card = cardOf(form);
    closeMenu(card);
    card.querySelector(MENU).focus();
  });

  function dropped(event) {
    if (event.from === event.to) return;
    var card = event.item;
    var form = card.querySelector("form.card-move");
    if (!form) {
      form = moveForm(card);
      form.hidden = true;  // a drop needs no menu
    }
    card.boardOrigin = { list: event.from, index: event.oldIndex };
    form.elements.stage_id.value = event.to.dataset.stageId;
    form.requestSubmit();
  }

  function isLostStage(form) {
    var board = form.closest(".board");
    var lost = board ? (board.dataset.lostStages || "").split(",") : [];
    return lost.indexOf(form.elements.stage_id.value) !== -1;
  }

  function reasonInput(form) {
    var input = form.elements.lost_reason;
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = "lost_reason";
      form.appendChild(input);
    }
    return input;
  }

  // Back to the column it came from, its stage chosen again in its <select>.
  function putBack(card) {
    if (!card) return;
    var origin = card.boardOrigin;
    if (origin && origin.list.isConnected) {
      origin.list.insertBefore(card, origin.list.children[origin.index] || null);
    }
    card.boardOrigin = null;
    card.classList.remove("is-moving");
    var form = card.querySelector("form.card-move");
    if (!form) return;
    if (form.hidden) { form.remove(); return; }  // built for a drop
    form.elements.stage_id.value = stageOf(card);
    if (form.elements.lost_reason && form.elements.lost_reason.type === "hidden") form.elements.lost_reason.value = "";
  }

  // A move to a lost stage waits for its reason, whether it came from a drop or the <select>.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form.card-move")) return;
    if (isLostStage(form) && !reasonInput(form).value.trim()) {
      var dialog = document.getElementById("lost-dialog");
      if (!dialog) return;  // no dialog (a page of its own): the server asks for the reason
      event.preventDefault();
      event.stopImmediatePropagation();
      askReason(dialog, form);
      return;
    }
    cardOf(form).classList.add("is-moving");
  }, true);

  function askReason(dialog, form) {
    waitingForReason = form;
    var title = cardOf(form).querySelector("a");
    dialog.querySelector(".lost-deal-title").textContent = title ? title.textContent : "";
    var reason = dialog.querySelector("textarea");
    reason.value = "";
    dialog.showModal();
    reason.focus();
  }

  document.addEventListener("submit", function (event) {
    var dialogForm = event.target;
    if (!dialogForm.matches || !dialogForm.matches("#lost-dialog form")) return;
    event.preventDefault();
    var reason = dialogForm.querySelector("textarea");
    if (!reason.value.trim()) {  // only spaces: "required" lets them through
      reason.value = "";
      reason.reportValidity();
      return;
    }
    var form = waitingForReason;
    waitingForReason = null;
    dialogForm.closest("dialog").close();
    if (!form || !form.isConnected) return;
    reasonInput(form).value = reason.value.trim();
    form.requestSubmit();
  });

  document.addEventListener("click", function (event) {
    var cancel = event.target.closest && event.target.closest("#lost-dialog .cancel");
    if (cancel) cancel.closest("dialog").close();
  });

  // Closed without a reason (Cancel, Escape): nothing moves.
  document.addEventListener("close", function (event) {
    if (event.target.id !== "lost-dialog" || !waitingForReason) return;
    var form = waitingForReason;
    waitingForReason = null;
    putBack(cardOf(form));
  }, true);

  function isMoveForm(element) {
    return element && element.matches && element.matches("form.card-move");
  }

  // Before the swap: a card moved with its <select> joins its new column; a refused move
  // (409 stale, 422, 403...) goes back. The answer then replaces the card where it stands.
  document.addEventListener("htmx:after:request", function (event) {
    var ctx = event.detail.ctx;
    if (!isMoveForm(ctx.sourceElement)) return;
    var card = cardOf(ctx.sourceElement);
    if (ctx.response.status >= 400) { putBack(card); return; }
    card.boardOrigin = null;
    if (card.contains(document.activeElement)) refocus = card.id;
    var column = document.getElementById("stage-cards-" + ctx.sourceElement.elements.stage_id.value);
    if (column && card.parentNode !== column) column.insertBefore(card, column.firstChild);
  });

  // A keyboard user who moved a card with its menu finds the focus back on that menu.
  document.addEventListener("htmx:after:settle", function (event) {
    if (!refocus || event.target.id !== refocus) return;
    refocus = null;
    var menu = event.target.querySelector(MENU);
    if (menu) menu.focus();
  });

  document.addEventListener("htmx:error", function (event) {
    var ctx = event.detail.ctx;
    if (ctx && isMoveForm(ctx.sourceElement)) putBack(cardOf(ctx.sourceElement));
  });
})();

// ---- Dialogs: a button with data-open-dialog="id" opens that <dialog> as a modal; a
// button with data-close-dialog inside closes it. No inline handlers (the CSP forbids them).
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var opener = event.target.closest && event.target.closest("[data-open-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.dataset.openDialog);
      if (dialog && !dialog.open) dialog.showModal();
      return;
    }
    var closer = event.target.closest && event.target.closest("[data-close-dialog]");
    if (closer) closer.closest("dialog").close();
  });
})();
